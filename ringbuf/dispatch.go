package ringbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrShortRecord is returned (wrapped) by Dispatch for a record too short to
// hold its 4-byte category.
var ErrShortRecord = errors.New("ringbuf: record shorter than its category")

// ErrUnknownCategory is returned (wrapped) by Dispatch for a record whose
// category no handler was registered for.
var ErrUnknownCategory = errors.New("ringbuf: unknown record category")

// categorySize is the length of the little-endian uint32 that leads every
// record a Dispatcher routes.
const categorySize = 4

// DispatchStats counts the records a Dispatcher has seen.
type DispatchStats struct {
	Dispatched uint64 // records handed to a registered handler
	Short      uint64 // records shorter than their category
	Unknown    uint64 // records of a category nobody registered
}

// Dispatcher routes records by category: a BPF program writes a
// little-endian uint32 category in front of each record, and the handler
// registered under that id receives the rest. Register and Dispatch may be
// called from any goroutine; Dispatch allocates nothing for a record it
// routes.
type Dispatcher struct {
	mu       sync.Mutex                          // serialises Register
	handlers atomic.Pointer[[]func(int, []byte)] // replaced, never mutated, by Register

	dispatched, short, unknown atomic.Uint64
}

// NewDispatcher returns a Dispatcher with no categories.
func NewDispatcher() *Dispatcher {
	return &Dispatcher{}
}

// Register adds a handler and returns its category id. Ids are assigned in
// registration order starting at 0, so a BPF program can mirror them in an
// enum. fn receives the CPU the record came from (-1 when the source has
// none, as for a BPF ring buffer) and the record after its category, valid
// only during the call. fn must not modify payload: it is the reader's
// view of the ring, read-only for a BPF ring buffer (a write faults with
// SIGSEGV, which Go cannot recover from) and shared with the kernel for a
// perf ring. A nil fn registers a category whose records are dropped.
func (d *Dispatcher) Register(fn func(cpu int, payload []byte)) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var old []func(int, []byte)
	if p := d.handlers.Load(); p != nil {
		old = *p
	}
	next := make([]func(int, []byte), len(old)+1)
	copy(next, old)
	next[len(old)] = fn
	d.handlers.Store(&next)
	return uint32(len(old))
}

// Dispatch routes one record to the handler of its category. A record
// shorter than 4 bytes is an error wrapping ErrShortRecord, a category
// nobody registered one wrapping ErrUnknownCategory; both are counted in
// Stats.
func (d *Dispatcher) Dispatch(cpu int, record []byte) error {
	switch cat, registered, ok := d.route(cpu, record); {
	case ok:
		return nil
	case len(record) < categorySize:
		return &sentinelError{fmt.Sprintf("ringbuf: dispatch: record of %d bytes is shorter than its category", len(record)), ErrShortRecord}
	default:
		return &sentinelError{fmt.Sprintf("ringbuf: dispatch: unknown record category %d (%d registered)", cat, registered), ErrUnknownCategory}
	}
}

// Sample is Dispatch without the error, shaped to be a Handler's Sample
// field: Handler{Sample: d.Sample}. Bad records are still counted, and
// allocate nothing.
func (d *Dispatcher) Sample(cpu int, record []byte) {
	d.route(cpu, record)
}

// Record is Dispatch for sources without a CPU, shaped to be the callback of
// RingReader.Consume: r.Consume(d.Record). Handlers see cpu -1.
func (d *Dispatcher) Record(record []byte) {
	d.route(-1, record)
}

// route counts and delivers one record. When it cannot, it reports the
// category it read and how many are registered, for the error.
func (d *Dispatcher) route(cpu int, record []byte) (cat uint32, registered int, ok bool) {
	if len(record) < categorySize {
		d.short.Add(1)
		return 0, 0, false
	}
	cat = binary.LittleEndian.Uint32(record)
	var hs []func(int, []byte)
	if p := d.handlers.Load(); p != nil {
		hs = *p
	}
	if uint64(cat) >= uint64(len(hs)) {
		d.unknown.Add(1)
		return cat, len(hs), false
	}
	d.dispatched.Add(1)
	if fn := hs[cat]; fn != nil {
		fn(cpu, record[categorySize:])
	}
	return cat, len(hs), true
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() DispatchStats {
	return DispatchStats{
		Dispatched: d.dispatched.Load(),
		Short:      d.short.Load(),
		Unknown:    d.unknown.Load(),
	}
}

// Dropped returns the number of records that reached no handler: short
// records plus records of unknown categories.
func (d *Dispatcher) Dropped() uint64 {
	return d.short.Load() + d.unknown.Load()
}
