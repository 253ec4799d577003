//go:build linux

package ringbuf

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// PeekRun writes to dst the samples at the head of ring i, up to len(dst)
// of them in the ring's order, without consuming them, and returns how
// many it wrote. It is Peek for a window of records: a caller merging
// rings by time compares the windows' samples in its own loop, with no
// call into the reader per record, and consumes what it delivered with
// AdvanceRun.
//
// Records before the first sample that are not samples are consumed on
// the way, as Peek consumes them (the count of each PERF_RECORD_LOST goes
// to lost, which may be nil); the window ends before any later one, and
// before a record that fails its checks (the next PeekRun starts with it:
// a corrupt ring is resynchronised and reported as Peek does). The samples'
// Data point into the ring (one sample that wraps the ring's end sits in
// the ring's scratch buffer) and stay valid, unchanged, until they are
// consumed or the reader is closed.
//
// A PeekRun replaces the ring's earlier window and its held head (Peek's
// or ConsumeUntil's): it starts from the first record not consumed. The
// claims are Peek's (inside Begin and End the ring's head is read again
// only once the records seen are used up). It allocates nothing once the
// ring has had a window of len(dst) samples, and like Consume it must not
// run concurrently with another call that reads the reader.
func (r *PerfReader) PeekRun(i int, lost func(cpu int, count uint64), dst []PerfSample) (int, error) {
	if r.ps.open {
		return peekRunRing(r.rings, i, lost, &r.stats, &r.g, dst, true)
	}
	return r.peekRunClaimed(i, lost, dst)
}

func (r *PerfReader) peekRunClaimed(i int, lost func(cpu int, count uint64), dst []PerfSample) (n int, err error) {
	if err := r.g.enter("peek run"); err != nil {
		return 0, err
	}
	defer func() { err = r.leave(err) }()
	return peekRunRing(r.rings, i, lost, &r.stats, &r.g, dst, false)
}

// AdvanceRun consumes the first n samples of ring i's latest PeekRun (n
// counts from the window's first sample, so a run delivered in steps
// advances to n at each step; an n no greater than an earlier call's
// consumes nothing). It reports whether it consumed anything: false when
// the ring has no window, or a call other than PeekRun and AdvanceRun
// read the ring since. An n past the window's length, or negative, is an
// error wrapping unix.EINVAL.
func (r *PerfReader) AdvanceRun(i, n int) (bool, error) {
	if r.ps.open {
		return r.ps.advanceRun(r.rings, i, n, &r.stats)
	}
	return r.advanceRunClaimed(i, n)
}

func (r *PerfReader) advanceRunClaimed(i, n int) (advanced bool, err error) {
	if err := r.g.enter("advance run"); err != nil {
		return false, err
	}
	defer func() { err = r.leave(err) }()
	return r.ps.advanceRun(r.rings, i, n, &r.stats)
}

// PeekRun is PerfReader.PeekRun.
func (s *PerfSim) PeekRun(i int, lost func(cpu int, count uint64), dst []PerfSample) (int, error) {
	if s.ps.open {
		return peekRunRing(s.rings, i, lost, &s.stats, &s.g, dst, true)
	}
	return s.peekRunClaimed(i, lost, dst)
}

func (s *PerfSim) peekRunClaimed(i int, lost func(cpu int, count uint64), dst []PerfSample) (n int, err error) {
	if err := s.g.enter("peek run"); err != nil {
		return 0, err
	}
	defer func() { err = s.g.leave(err, s) }()
	return peekRunRing(s.rings, i, lost, &s.stats, &s.g, dst, false)
}

// AdvanceRun is PerfReader.AdvanceRun.
func (s *PerfSim) AdvanceRun(i, n int) (bool, error) {
	if s.ps.open {
		return s.ps.advanceRun(s.rings, i, n, &s.stats)
	}
	return s.advanceRunClaimed(i, n)
}

func (s *PerfSim) advanceRunClaimed(i, n int) (advanced bool, err error) {
	if err := s.g.enter("advance run"); err != nil {
		return false, err
	}
	defer func() { err = s.g.leave(err, s) }()
	return s.ps.advanceRun(s.rings, i, n, &s.stats)
}

func peekRunRing(rings []*perfRing, i int, lost func(int, uint64), c *perfCounters, g *guard, dst []PerfSample, session bool) (int, error) {
	if uint(i) >= uint(len(rings)) {
		return 0, errNoRing
	}
	ring := rings[i]
	if !session {
		ring.sync()
		defer ring.publish() // the records before the window that were consumed
	}
	return ring.peekRun(lost, c, g, dst) // its errors name the CPU already
}

func (ps *peekSession) advanceRun(rings []*perfRing, i, n int, c *perfCounters) (bool, error) {
	if uint(i) >= uint(len(rings)) {
		return false, errNoRing
	}
	ring := rings[i]
	if !ps.open {
		ring.sync()
	}
	k, err := ring.advanceRun(n)
	if k == 0 {
		return false, err
	}
	if ps.open {
		ps.samples += uint64(k)
		return true, nil
	}
	ring.publish()
	c.samples.Add(uint64(k))
	return true, nil
}

// peekRun is PeekRun on the cursor. The first sample is found as Peek
// finds it (run, which consumes and reports what comes before it, and
// resynchronises a corrupt ring); the ones after it are read in a loop of
// their own that stops, without consuming or reporting anything, at the
// first record that is not a sound sample.
func (r *perfRing) peekRun(lost func(int, uint64), c *perfCounters, g *guard, dst []PerfSample) (int, error) {
	r.runEnds = r.runEnds[:0]
	r.runDone = 0
	if len(dst) == 0 {
		return 0, nil
	}
	var none uint64
	_, ok, err := r.run(0, true, &Handler{Lost: lost}, c, g, &none, &dst[0])
	if !ok {
		return 0, err
	}
	// The window takes over from the head run held: it is dst[0].
	r.peeked = false
	if cap(r.runEnds) < len(dst) {
		r.runEnds = make([]uint64, 0, len(dst))
	}
	r.runAt = r.cur
	tail, head := r.peekNext, r.seen
	ends := append(r.runEnds, tail)
	n := 1
	for n < len(dst) {
		if tail == head {
			if head = loadAcquire(r.head); tail == head {
				break
			}
			if size := uint64(len(r.data)); head-tail > size || (head-tail)%8 != 0 {
				head = tail // left for the next PeekRun to find and report
				break
			}
			r.seen = head
		}
		off := tail & r.mask
		hdr := readPerfHeader(r.data[off : off+perfHeaderSize])
		if !perfRecordOK(hdr, head-tail) || hdr.typ != perfRecordSample {
			break
		}
		at, raw, valid := r.sample(r.record(off, hdr.size))
		if !valid {
			break
		}
		tail += hdr.size
		d := &dst[n]
		d.CPU, d.Time, d.Data = r.cpu, at, raw
		ends = append(ends, tail)
		n++
	}
	r.runEnds = ends
	return n, nil
}

var (
	errRunTooLong  = fmt.Errorf("ringbuf: advance run: past the window: %w", unix.EINVAL)
	errRunNegative = fmt.Errorf("ringbuf: advance run: negative count: %w", unix.EINVAL)
)

// advanceRun moves the cursor past the first n samples of the window and
// returns how many it consumed.
func (r *perfRing) advanceRun(n int) (int, error) {
	if n < 0 {
		return 0, errRunNegative
	}
	if len(r.runEnds) == 0 {
		return 0, nil // no window: nothing to be past
	}
	if n > len(r.runEnds) {
		return 0, errRunTooLong
	}
	// A head held since (by Peek, Next or ConsumeUntil) leaves the cursor
	// where it was, but its Advance would move the cursor back to it.
	if n <= r.runDone || r.cur != r.runAt || r.peeked {
		return 0, nil
	}
	k := n - r.runDone
	r.cur = r.runEnds[n-1]
	r.runAt, r.runDone = r.cur, n
	return k, nil
}
