//go:build linux

package ringbuf

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// PerfSample is one sample record at the head of a perf ring, as Peek
// returns it. Data points into the ring (or into the ring's own scratch
// buffer when the record wraps the ring's end) and stays valid, unchanged,
// until the record is advanced past, the reader is consumed or closed: the
// kernel does not write over a record the reader has not consumed.
type PerfSample struct {
	CPU  int
	Time uint64 // CLOCK_MONOTONIC nanoseconds with PerfOptions.Timestamps, else 0
	Data []byte // as Handler.Sample's data
}

// Rings returns the number of per-CPU rings, the indexes Peek and Advance
// take (ring i is on CPU CPUs()[i]).
func (r *PerfReader) Rings() int { return len(r.cpus) }

// Peek returns the sample at the head of ring i without consuming it, so
// that a caller merging several rings (by time, say) holds each ring's next
// record in place, without copying it, until it decides to deliver it and
// calls Advance. Records before that sample that are not samples are
// consumed on the way: the count of each PERF_RECORD_LOST goes to lost
// (which may be nil). ok is false when the ring holds no sample. A corrupt
// ring is resynchronised and reported as Consume does. Peek allocates
// nothing, and like Consume it must not run concurrently with another
// Consume, Poll, Peek or Advance.
//
// Outside Begin and End, each Peek and Advance claims the reader for
// itself, as a Consume does; between them they do not, which is what a
// merge that calls them for every record wants.
//
// Peek does not reset Fd: a caller that drains with Peek and Advance rather
// than Consume calls ClearWakeup before it looks at the rings.
func (r *PerfReader) Peek(i int, lost func(cpu int, count uint64)) (PerfSample, bool, error) {
	if r.ps.open {
		return peekRing(r.rings, i, lost, &r.stats, &r.g)
	}
	return r.peekClaimed(i, lost)
}

// peekClaimed is Peek outside Begin/End, kept apart so that the deferred
// release does not weigh on Peek's path inside them.
func (r *PerfReader) peekClaimed(i int, lost func(cpu int, count uint64)) (s PerfSample, ok bool, err error) {
	if err := r.g.enter("peek"); err != nil {
		return PerfSample{}, false, err
	}
	defer func() { err = r.leave(err) }()
	return peekRing(r.rings, i, lost, &r.stats, &r.g)
}

// Advance consumes the sample the latest Peek of ring i returned, storing
// the ring's new tail so the kernel can reuse its space. It reports whether
// it did: false when no Peek of that ring is outstanding or a Consume has
// consumed the ring since.
func (r *PerfReader) Advance(i int) (bool, error) {
	if r.ps.open {
		return r.ps.advance(r.rings, i, &r.stats)
	}
	return r.advanceClaimed(i)
}

func (r *PerfReader) advanceClaimed(i int) (advanced bool, err error) {
	if err := r.g.enter("advance"); err != nil {
		return false, err
	}
	defer func() { err = r.leave(err) }()
	return r.ps.advance(r.rings, i, &r.stats)
}

// Begin claims the reader, as one Consume call does, for the Peek and
// Advance calls up to End, so that they need not claim it one by one. A
// Close meanwhile (from a handler, say) makes Peek find nothing, and End
// releases the reader. Begin while a Consume, Poll or another Begin holds
// the reader is an error wrapping unix.EBUSY.
func (r *PerfReader) Begin() error { return r.ps.begin(&r.g) }

// End ends what Begin started. Without a Begin it is an error wrapping
// unix.EINVAL.
func (r *PerfReader) End() error {
	if err := r.ps.end(&r.stats); err != nil {
		return err
	}
	return r.leave(nil)
}

// peekSession is the state of a Begin: whether one is open, and the samples
// advanced during it, counted into the reader's stats at End rather than
// one atomic add each.
type peekSession struct {
	open    bool
	samples uint64
}

var errNoSession = fmt.Errorf("ringbuf: end: no Begin: %w", unix.EINVAL)

func (ps *peekSession) begin(g *guard) error {
	if err := g.enter("begin"); err != nil {
		return err
	}
	ps.open = true
	return nil
}

func (ps *peekSession) end(c *perfCounters) error {
	if !ps.open {
		return errNoSession
	}
	ps.open = false
	c.samples.Add(ps.samples)
	ps.samples = 0
	return nil
}

func (ps *peekSession) advance(rings []*perfRing, i int, c *perfCounters) (bool, error) {
	if i < 0 || i >= len(rings) {
		return false, errNoRing
	}
	if !rings[i].advance() {
		return false, nil
	}
	if ps.open {
		ps.samples++
	} else {
		c.samples.Add(1)
	}
	return true, nil
}

// ClearWakeup does for a caller that drains with Peek and Advance what
// Consume does before it drains: it takes back the wakeup the reader
// queued on Fd after a handler panic left records behind (see Consume).
// Call it before looking at the rings.
func (r *PerfReader) ClearWakeup() error {
	if err := r.g.enter("clear wakeup"); err != nil {
		return err
	}
	var err error
	if r.kicked {
		r.kicked = false
		if _, rerr := r.wake.Read(); rerr != nil && !errors.Is(rerr, unix.EAGAIN) {
			err = fmt.Errorf("ringbuf: clear wakeup: %w", rerr)
		}
	}
	return r.leave(err)
}

// ringsPending reports whether any ring's head is past its tail.
func ringsPending(rings []*perfRing) bool {
	for _, ring := range rings {
		if ring.pending() {
			return true
		}
	}
	return false
}

var errNoRing = fmt.Errorf("ringbuf: no such ring: %w", unix.EINVAL)

func peekRing(rings []*perfRing, i int, lost func(int, uint64), c *perfCounters, g *guard) (PerfSample, bool, error) {
	if i < 0 || i >= len(rings) {
		return PerfSample{}, false, errNoRing
	}
	ring := rings[i]
	s, ok, err := ring.peek(lost, c, g)
	if err != nil {
		err = fmt.Errorf("ringbuf: CPU %d: %w", ring.cpu, err)
	}
	return s, ok, err
}

// peek finds the first sample from the ring's tail, consuming the records
// of other types before it, and remembers where the sample ends for
// advance. The checks are consume's, record by record.
func (r *perfRing) peek(lost func(int, uint64), c *perfCounters, g *guard) (PerfSample, bool, error) {
	r.peeked = false
	head := loadAcquire(r.head)
	tail := atomic.LoadUint64(r.tail)
	size := uint64(len(r.data))
	for tail != head && !g.closed() {
		if avail := head - tail; avail > size || avail%8 != 0 || tail%8 != 0 {
			err := corruptf("perf ring head %d, tail %d, size %d", head, tail, size)
			return PerfSample{}, false, r.resync(head, c, err)
		}
		off := tail & r.mask
		hdr := readPerfHeader(r.data[off : off+perfHeaderSize])
		if err := checkPerfRecord(hdr, head-tail); err != nil {
			return PerfSample{}, false, r.resync(head, c, err)
		}
		rec := r.record(off, hdr.size)
		switch hdr.typ {
		case perfRecordSample:
			at, raw, ok := r.sample(rec)
			if !ok {
				return PerfSample{}, false, r.resync(head, c, r.sampleError(rec))
			}
			r.peeked, r.peekTail, r.peekNext = true, tail, tail+hdr.size
			return PerfSample{CPU: r.cpu, Time: at, Data: raw}, true, nil
		case perfRecordLost:
			n, err := lostCount(rec)
			if err != nil {
				return PerfSample{}, false, r.resync(head, c, err)
			}
			tail += hdr.size
			storeRelease(r.tail, tail)
			c.lost.Add(n)
			if lost != nil {
				lost(r.cpu, n)
			}
		default:
			tail += hdr.size
			storeRelease(r.tail, tail)
			c.skipped.Add(1)
		}
	}
	return PerfSample{}, false, nil
}

// advance moves the tail past the sample peek returned, if the tail has not
// moved since.
func (r *perfRing) advance() bool {
	if !r.peeked {
		return false
	}
	r.peeked = false
	if atomic.LoadUint64(r.tail) != r.peekTail {
		return false
	}
	storeRelease(r.tail, r.peekNext)
	return true
}
