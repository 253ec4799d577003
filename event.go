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
	if len(rec) < categorySize {
		p.errs.Add(1)
		if p.onError != nil {
			p.onError(fmt.Errorf("eventpipe: CPU %d: %w: %d bytes", cpu, ringbuf.ErrShortRecord, len(rec)))
		}
		return
	}
	cat := binary.LittleEndian.Uint32(rec)
	if uint64(cat) >= uint64(len(p.handlers)) {
		p.errs.Add(1)
		if p.onError != nil {
			p.onError(fmt.Errorf("eventpipe: CPU %d: %w: %d (%d registered)", cpu, ringbuf.ErrUnknownCategory, cat, len(p.handlers)))
		}
		return
	}
	p.routed++ // into Stats at the drain's end (flushRouted), not one atomic add per record
	if fn := p.handlers[cat]; fn != nil {
		fn(Event{Category: cat, CPU: cpu, Time: at, Payload: rec[categorySize:]})
	}
}

// sample is the perf sources' Handler.SampleAt.
func (p *Pipe) sample(cpu int, at uint64, rec []byte) { p.route(cpu, at, rec) }

// ringRecord is the ring buffers' Consume callback.
func (p *Pipe) ringRecord(rec []byte) { p.route(-1, 0, rec) }

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
