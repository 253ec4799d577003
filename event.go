package eventpipe

import (
	"encoding/binary"
	"fmt"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// Event is one record delivered to a category's handler.
type Event struct {
	// Category is the record's leading little-endian uint32, the id
	// Register returned.
	Category uint32
	// CPU is the CPU whose perf ring the record came from, -1 for a BPF
	// ring buffer record.
	CPU int
	// Time is the kernel's timestamp of a perf record, nanoseconds of
	// CLOCK_MONOTONIC (comparable with unix.ClockGettime), for the perf
	// sources of an Ordered pipe (or of a perf source attached with
	// PerfOptions.Timestamps); 0 otherwise.
	Time uint64
	// Payload is the record after its category. It points into the ring
	// and is valid only during the handler's call; copy what must outlive
	// it, and do not modify it (a ring buffer is mapped read-only). A perf
	// payload keeps the kernel's padding to 8 bytes (old ring contents),
	// so a program that needs an exact length carries it.
	Payload []byte
}

// categorySize is the length of the category word that leads each record.
const categorySize = 4

// route delivers one record to its category's handler, or reports why it
// cannot.
func (p *Pipe) route(cpu int, at uint64, rec []byte) {
	fn, cat, payload, ok := p.lookup(rec)
	if !ok {
		p.misroute(cpu, rec)
		return
	}
	if fn != nil {
		fn(Event{Category: cat, CPU: cpu, Time: at, Payload: payload})
	}
}

// lookup returns the handler of rec's category (nil for a reserved id)
// and rec's payload, and counts rec as routed; ok is false when rec is too
// short to hold a category or its category is unknown, for misroute to
// report. It is small enough for the compiler to inline into a drain
// loop, so that the handler is the only call per record.
func (p *Pipe) lookup(rec []byte) (fn func(Event), cat uint32, payload []byte, ok bool) {
	if len(rec) < categorySize {
		return nil, 0, nil, false
	}
	h := p.handlers
	if cat = binary.LittleEndian.Uint32(rec); uint64(cat) >= uint64(len(h)) {
		return nil, 0, nil, false
	}
	p.routed++ // into Stats at the drain's end (flushRouted), not one atomic add per record
	return h[cat], cat, rec[categorySize:], true
}

// misroute counts and reports a record too short to hold a category, or
// of a category nobody registered.
func (p *Pipe) misroute(cpu int, rec []byte) {
	p.errs.Add(1)
	switch {
	case p.onError == nil:
	case len(rec) < categorySize:
		p.onError(fmt.Errorf("eventpipe: CPU %d: %w: %d bytes", cpu, ringbuf.ErrShortRecord, len(rec)))
	default:
		p.onError(fmt.Errorf("eventpipe: CPU %d: %w: %d (%d registered)", cpu, ringbuf.ErrUnknownCategory, binary.LittleEndian.Uint32(rec), len(p.handlers)))
	}
}

// sample is the perf sources' Handler.SampleAt.
func (p *Pipe) sample(cpu int, at uint64, rec []byte) { p.route(cpu, at, rec) }

// flushRouted adds the records routed since the last flush to
// Stats.Delivered (and the merge's late ones to Stats.Late); every drain
// ends with it, also when a handler panics.
func (p *Pipe) flushRouted() {
	if n := p.routed; n != 0 {
		p.routed = 0
		p.delivered.Add(n)
	}
	if n := p.lateRouted; n != 0 {
		p.lateRouted = 0
		p.late.Add(n)
	}
}
