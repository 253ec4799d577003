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
// itself, as a Consume does, reads the ring's positions afresh and stores
// the tail it moved. Between them they do not, which is what a merge that
// calls them for every record wants: a ring's head is read again only once
// the records published up to the head last read are used up (as Consume
// reads it once per drain), and the tail Advance moves is stored when that
// happens and at End, not per record. The kernel does not overwrite a
// record before the stored tail passes it, so a held record stays intact
// either way; the ring's space just comes back once per batch.
//
// Peek does not reset Fd: a caller that drains with Peek and Advance rather
// than Consume calls ClearWakeup before it looks at the rings.
func (r *PerfReader) Peek(i int, lost func(cpu int, count uint64)) (PerfSample, bool, error) {
	if r.ps.open {
		return peekRing(r.rings, i, lost, &r.stats, &r.g, true)
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
	return peekRing(r.rings, i, lost, &r.stats, &r.g, false)
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
func (r *PerfReader) Begin() error { return r.ps.begin(&r.g, r.rings) }

// End ends what Begin started. Without a Begin it is an error wrapping
// unix.EINVAL.
func (r *PerfReader) End() error {
	if err := r.ps.end(&r.stats, r.rings); err != nil {
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

func (ps *peekSession) begin(g *guard, rings []*perfRing) error {
	if err := g.enter("begin"); err != nil {
		return err
	}
	ps.open = true
	for _, ring := range rings {
		ring.sync()
	}
	return nil
}

// end stores every ring's tail; a Close during the session has not
// released the rings yet (the caller's leave does, after this).
func (ps *peekSession) end(c *perfCounters, rings []*perfRing) error {
	if !ps.open {
		return errNoSession
	}
	ps.open = false
	for _, ring := range rings {
		ring.publish()
	}
	c.samples.Add(ps.samples)
	ps.samples = 0
	return nil
}

func (ps *peekSession) advance(rings []*perfRing, i int, c *perfCounters) (bool, error) {
	if uint(i) >= uint(len(rings)) {
		return false, errNoRing
	}
	if ps.open {
		if !rings[i].advanceBatch() {
			return false, nil
		}
		ps.samples++
		return true, nil
	}
	if !rings[i].advance() {
		return false, nil
	}
	c.samples.Add(1)
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

func peekRing(rings []*perfRing, i int, lost func(int, uint64), c *perfCounters, g *guard, batch bool) (s PerfSample, ok bool, err error) {
	if uint(i) >= uint(len(rings)) {
		return PerfSample{}, false, errNoRing
	}
	ring := rings[i]
	if batch {
		ok, err = ring.peekBatch(lost, c, g, &s)
	} else {
		ok, err = ring.peek(lost, c, g, &s)
	}
	return s, ok, err
}

// Next is Advance(i) and then Peek(i), with the sample written to *s
// (left as it was when ok is false): one call per record for a merge
// that holds each ring's head in place while it delivers it.
func (r *PerfReader) Next(i int, lost func(cpu int, count uint64), s *PerfSample) (ok bool, err error) {
	if r.ps.open {
		return r.ps.next(r.rings, i, lost, &r.stats, &r.g, s)
	}
	if _, err := r.advanceClaimed(i); err != nil {
		return false, err
	}
	ps, ok, err := r.peekClaimed(i, lost)
	if ok {
		*s = ps
	}
	return ok, err
}

func (ps *peekSession) next(rings []*perfRing, i int, lost func(int, uint64), c *perfCounters, g *guard, s *PerfSample) (bool, error) {
	if uint(i) >= uint(len(rings)) {
		return false, errNoRing
	}
	ring := rings[i]
	if ring.advanceBatch() {
		ps.samples++
	}
	return ring.peekBatch(lost, c, g, s) // its errors name the CPU already
}

// ConsumeUntil delivers a run of ring i's samples to h in the ring's
// order: every sample from the ring's head on whose time is at most until.
// It stops at the first sample whose time passes until, which it holds as
// the ring's head, as Peek would return it, and writes to *head (which may
// be nil) with ok true; or at the end of what the ring holds (ok false,
// *head left as it was). n is the number of samples delivered. A head held by an earlier Peek or ConsumeUntil is
// where the run starts, and it is delivered without being read again.
//
// It exists for a caller that merges rings by time: having found ring i's
// head to be the oldest and the next oldest of the other rings to be at
// until, it delivers everything up to there in one call running the
// ring's own loop, where Peek and Advance (or Next) per record would cost
// a call chain and a second read of each record. A reader opened without
// PerfOptions.Timestamps stamps every sample 0, so any bound delivers the
// whole ring.
//
// As in Consume, the records that are not samples are consumed on the way
// (the count of each PERF_RECORD_LOST goes to h.Lost), and a sample goes
// to h.SampleAt, or else to h.Sample. A corrupt ring is resynchronised and
// reported as Peek does, after the samples before the corruption were
// delivered. A panic in a handler propagates to the caller: the sample it
// was given counts as consumed, the records after it stay in the ring (and
// no head is held; the next Peek finds the following sample). Unlike
// Consume it does not make Fd readable then: the caller, which drives the
// ring, comes back for them. Like Peek it does not reset Fd.
//
// The claims are Peek's: inside Begin and End it runs on the session's
// positions and the tail is stored when the records seen are used up and
// at End; outside, it claims the reader for the call and stores the tail
// before it returns. It allocates nothing, and like Consume it must not run
// concurrently with another Consume, Poll, Peek, Advance or ConsumeUntil.
func (r *PerfReader) ConsumeUntil(i int, until uint64, h Handler, head *PerfSample) (n int, ok bool, err error) {
	if r.ps.open {
		if uint(i) >= uint(len(r.rings)) {
			return 0, false, errNoRing
		}
		return r.rings[i].run(until, false, &h, &r.stats, &r.g, &r.ps.samples, head)
	}
	return r.consumeUntilClaimed(i, until, &h, head)
}

func (r *PerfReader) consumeUntilClaimed(i int, until uint64, h *Handler, head *PerfSample) (n int, ok bool, err error) {
	if err := r.g.enter("consume until"); err != nil {
		return 0, false, err
	}
	defer func() { err = r.leave(err) }()
	return runRingOnce(r.rings, i, until, h, &r.stats, &r.g, head)
}

// runRingOnce is ConsumeUntil outside a session: the ring's run on fresh
// positions, storing the tail and the count of samples before it returns
// (or before a panicking handler unwinds it).
func runRingOnce(rings []*perfRing, i int, until uint64, h *Handler, c *perfCounters, g *guard, head *PerfSample) (n int, ok bool, err error) {
	if uint(i) >= uint(len(rings)) {
		return 0, false, errNoRing
	}
	ring := rings[i]
	ring.sync()
	var samples uint64
	defer func() {
		ring.publish()
		c.samples.Add(samples)
	}()
	return ring.run(until, false, h, c, g, &samples, head)
}

// A ring's cursor, for Peek and Advance: cur is the reader's tail, which
// may run ahead of the one stored in the ring (pub, the tail last stored
// or read: a run moves only cur, one store per record), and seen the head
// as last read. Outside a session peek and advance sync it before and
// publish it after each call; inside one, Begin syncs and End publishes.

// sync takes the ring's stored tail as the cursor and forgets the head, so
// that the next peekBatch reads it. A sample peeked before stays held only
// if nothing consumed it since; the head is then known to be at least past
// it (seen must never be behind cur once Advance moves it).
func (r *perfRing) sync() {
	r.cur = atomic.LoadUint64(r.tail)
	r.seen, r.pub = r.cur, r.cur
	r.peeked = r.peeked && r.peekTail == r.cur
	if r.peeked {
		r.seen = r.peekNext
	}
}

// publish stores the cursor's tail if it moved.
func (r *perfRing) publish() {
	if r.cur != r.pub {
		r.pub = r.cur
		storeRelease(r.tail, r.cur)
	}
}

// peek is peekBatch on fresh positions, storing what it consumed before it
// returns (or before a lost handler that panics unwinds it).
func (r *perfRing) peek(lost func(int, uint64), c *perfCounters, g *guard, s *PerfSample) (bool, error) {
	r.sync()
	defer r.publish()
	return r.peekBatch(lost, c, g, s)
}

// peekBatch finds the first sample from the cursor's tail, consuming the
// records of other types before it, and holds it for advance; the sample
// goes to *s, untouched when there is none. A sample already held is
// returned as it is, not read again.
func (r *perfRing) peekBatch(lost func(int, uint64), c *perfCounters, g *guard, s *PerfSample) (bool, error) {
	var none uint64
	_, ok, err := r.run(0, true, &Handler{Lost: lost}, c, g, &none, s)
	return ok, err
}

// hold makes the sample at tail, of size bytes, the ring's held head (for
// advance and run) and writes it to *s.
func (r *perfRing) hold(tail, size, at uint64, raw []byte, s *PerfSample) {
	r.peeked, r.peekTail, r.peekNext = true, tail, tail+size
	// Field by field from the values, not *s = r.held: a copy that reads
	// back what was just stored stalls on store forwarding.
	r.held.CPU, r.held.Time, r.held.Data = r.cpu, at, raw
	if s != nil {
		s.CPU, s.Time, s.Data = r.cpu, at, raw
	}
}

// run delivers to h, from the cursor's tail, every sample whose time is at
// most until (none when peekOnly), and holds the first sample past it,
// written to *s; it reports whether it holds one (false: the ring is used
// up, closed or corrupt). The held head it starts from, if any, goes out
// without being read again. Each sample delivered is consumed (the cursor
// moved past it and *samples counted) before its handler runs, so that a
// handler that panics does not get it again. The checks are consume's:
// the positions' once per head read, the headers' record by record.
func (r *perfRing) run(until uint64, peekOnly bool, h *Handler, c *perfCounters, g *guard, samples *uint64, s *PerfSample) (n int, ok bool, err error) {
	tail, head := r.cur, r.seen
	// The cursor and the count live in locals, stored on the way out (also
	// when a handler panics: the sample it was given is behind tail
	// already, so it counts as consumed). Stored through r and samples
	// record by record, they made a run 17 % slower than Consume's loop
	// (BenchmarkPerfRunVsConsume).
	defer func() {
		r.cur = tail
		*samples += uint64(n)
	}()
	if r.peeked {
		if peekOnly || r.held.Time > until {
			if s != nil {
				*s = r.held
			}
			return 0, true, nil
		}
		r.peeked = false
		tail = r.peekNext
		n++
		if h.SampleAt != nil {
			h.SampleAt(r.cpu, r.held.Time, r.held.Data)
		} else if h.Sample != nil {
			h.Sample(r.cpu, r.held.Data)
		}
	}
	for !g.closed() {
		if tail == head {
			// The records seen are used up: give their space back to
			// the kernel, and look for more.
			r.cur = tail
			r.publish()
			head = loadAcquire(r.head)
			r.seen = head
			if tail == head {
				break
			}
			if size := uint64(len(r.data)); head-tail > size || (head-tail)%8 != 0 || tail%8 != 0 {
				err := corruptf("perf ring head %d, tail %d, size %d", head, tail, size)
				return n, false, r.resyncRun(&tail, head, c, err)
			}
		}
		off := tail & r.mask
		hdr := readPerfHeader(r.data[off : off+perfHeaderSize])
		if avail := head - tail; !perfRecordOK(hdr, avail) {
			return n, false, r.resyncRun(&tail, head, c, checkPerfRecord(hdr, avail))
		}
		rec := r.record(off, hdr.size)
		switch hdr.typ {
		case perfRecordSample:
			at, raw, valid := r.sample(rec)
			if !valid {
				return n, false, r.resyncRun(&tail, head, c, r.sampleError(rec))
			}
			if peekOnly || at > until {
				r.hold(tail, hdr.size, at, raw, s)
				return n, true, nil
			}
			tail += hdr.size
			n++
			if h.SampleAt != nil {
				h.SampleAt(r.cpu, at, raw)
			} else if h.Sample != nil {
				h.Sample(r.cpu, raw)
			}
		case perfRecordLost:
			count, err := lostCount(rec)
			if err != nil {
				return n, false, r.resyncRun(&tail, head, c, err)
			}
			tail += hdr.size
			c.lost.Add(count)
			if h.Lost != nil {
				r.cur = tail // a lost handler may Peek
				h.Lost(r.cpu, count)
			}
		default:
			tail += hdr.size
			c.skipped.Add(1)
		}
	}
	return n, false, nil
}

// resyncRun is resyncCursorOnCPU for run, whose cursor is *tail until it
// returns.
func (r *perfRing) resyncRun(tail *uint64, head uint64, c *perfCounters, err error) error {
	*tail = head
	return r.resyncCursorOnCPU(head, c, err)
}

// resyncCursorOnCPU is resyncCursor with the error naming the ring's CPU,
// as Consume's errors do.
func (r *perfRing) resyncCursorOnCPU(head uint64, c *perfCounters, err error) error {
	return onCPU(r.resyncCursor(head, c, err), r.cpu)
}

// resyncCursor is resync for the cursor too.
func (r *perfRing) resyncCursor(head uint64, c *perfCounters, err error) error {
	r.cur, r.seen, r.pub = head, head, head
	return r.resync(head, c, err)
}

// advance moves the stored tail past the sample peek returned, if the tail
// has not moved since (a Consume in between).
func (r *perfRing) advance() bool {
	if !r.peeked {
		return false
	}
	r.peeked = false
	if atomic.LoadUint64(r.tail) != r.peekTail {
		return false
	}
	storeRelease(r.tail, r.peekNext)
	r.cur, r.pub = r.peekNext, r.peekNext
	return true
}

// advanceBatch moves the cursor past the sample peekBatch returned; the
// tail is stored later (publish). Nothing but the session's own calls can
// move the ring's tail meanwhile.
func (r *perfRing) advanceBatch() bool {
	if !r.peeked {
		return false
	}
	r.peeked = false
	r.cur = r.peekNext
	return true
}
