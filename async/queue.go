package async

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
)

// ErrNilTask is wrapped by the error of every post given a nil function.
var ErrNilTask = errors.New("async: nil task")

// Errors are made once: a refused post allocates nothing either.
var (
	errPostNil         = opError("async: post: nil task", ErrNilTask)
	errPostClosed      = opError("async: post: closed", os.ErrClosed)
	errLimitedNil      = opError("async: post limited: nil task", ErrNilTask)
	errLimitedClosed   = opError("async: post limited: closed", os.ErrClosed)
	errLimitedSealed   = opError("async: post limited: sealed", os.ErrClosed)
	errWakeClosed      = opError("async: wake: closed", os.ErrClosed)
	errCloseClosed     = opError("async: close: already closed", os.ErrClosed)
	errSetLimitClosed  = opError("async: set limit: closed", os.ErrClosed)
	errSetLimitStarted = opError("async: set limit: limited tasks already posted", unix.EBUSY)
)

// wrapped is an error with its own complete text that still matches what it
// wraps: the text names the package and the operation once, and errors.Is
// sees the errno or sentinel underneath.
type wrapped struct {
	msg string
	err error
}

func opError(msg string, err error) error { return &wrapped{msg: msg, err: err} }

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// Queue is a FIFO of tasks with a pollable wakeup. Post and Wake may be
// called from any goroutine; Drain from one consumer goroutine at a time.
//
// The tasks live in a linked list of fixed-size segments. A producer claims
// a slot with one atomic add on the tail segment's counter, so producers
// share no lock; a mutex is taken only to link a new segment, once per
// segment, and by Close.
type Queue struct {
	// Read by every Post, written only at segment boundaries and by Close.
	tail   atomic.Pointer[segment]
	closed atomic.Bool
	efd    *eventfd.FD
	_      [cacheLine - 24]byte

	// pending is set by the producer that made the wakeup write and cleared
	// by the consumer before it looks for work; while set, producers skip
	// the write.
	pending atomic.Bool
	writes  atomic.Uint64

	// fdMu is held shared around every use of efd's descriptor number and
	// exclusively by Close, so a write racing with Close can never land on
	// a descriptor that reused the number.
	fdMu sync.RWMutex

	// growMu serialises linking a segment at the tail with Close: while it
	// is held nobody else is half-way through either, so the tail is open,
	// linked and last. It also guards free.
	growMu sync.Mutex
	free   []*segment // retired segments for reuse, at most maxFree
	// spill takes retired segments beyond maxFree: a burst that recurs
	// finds them there, and the collector frees them once bursts stop.
	// It is this queue's own, because a producer may still claim from a
	// retired segment (see segment.retire).
	spill sync.Pool
	_     [cacheLine]byte

	// The consumer's place: the next task is head.slots[hidx], of
	// generation hgen. Kept on the Queue so a panicking task leaves the
	// rest for the next Drain.
	head *segment
	hidx int
	hgen uint32
	// pos counts the tasks taken by the consumer, so Len from any
	// goroutine is the accepted count less pos.
	pos atomic.Uint64
	ran atomic.Uint64
	// A drain a panic interrupted is resumed by the next one, with the
	// end and the budget it had: a drain never runs tasks accepted after
	// it began, nor more than its budget, panics or not.
	resuming       bool
	resumeBounded  bool
	resumeEnd      uint64
	resumeLeft     int       // budget left, if bounded
	resumeDeadline time.Time // zero: no time bound
	_              [cacheLine]byte

	// The limit on tasks posted with PostLimited and PostContext. limited
	// counts those waiting; it is touched only when a limit is set.
	limit   int64
	errFull error
	limited atomic.Int64
	sealed  atomic.Bool
	// waiters counts PostContext calls waiting for room; the consumer
	// looks at room only when it is not zero.
	waiters atomic.Int32
	roomMu  sync.Mutex
	room    chan struct{} // closed when room may have appeared; nil: nobody waits
}

// NewQueue creates an empty queue with its own non-blocking eventfd.
func NewQueue() (*Queue, error) {
	efd, err := eventfd.New(0, eventfd.NonBlocking)
	if err != nil {
		return nil, fmt.Errorf("async: new queue: %w", err)
	}
	s := newSegment()
	s.open()
	q := &Queue{efd: efd, head: s, hgen: gen(s.claimed.Load())}
	q.tail.Store(s)
	return q, nil
}

// Fd returns the descriptor that is readable while tasks wait (or a Wake is
// unconsumed). It is -1 after Close.
func (q *Queue) Fd() int { return q.efd.Fd() }

// Post appends fn to the queue and wakes the consumer unless a wakeup is
// already pending. It fails with an error wrapping ErrNilTask for a nil fn
// and with an error wrapping os.ErrClosed after Close. It allocates nothing
// beyond fn itself once the queue holds as many segments as its backlog
// needs. Post is never refused for lack of room, and what it posts does not
// count against SetLimit: it is for tasks a consumer owes itself (wakeups,
// completions), which it must not lose.
func (q *Queue) Post(fn func()) error {
	if fn == nil {
		return errPostNil
	}
	if q.closed.Load() {
		return errPostClosed
	}
	return q.claim(q.tail.Load(), fn)
}

// SetLimit bounds the tasks posted with PostLimited and PostContext that
// may wait at once: past n, PostLimited fails with an error wrapping
// unix.EAGAIN and PostContext waits. 0 means no limit (the default); a
// negative n is EINVAL. Call it before any limited post (afterwards it is
// EBUSY), from the goroutine that made the queue or before sharing it.
func (q *Queue) SetLimit(n int) error {
	if n < 0 {
		return opError(fmt.Sprintf("async: set limit %d: negative", n), unix.EINVAL)
	}
	if q.closed.Load() {
		return errSetLimitClosed
	}
	if q.limited.Load() != 0 {
		return errSetLimitStarted
	}
	q.limit = int64(n)
	q.errFull = opError(fmt.Sprintf("async: post limited: queue full (limit %d)", n), unix.EAGAIN)
	return nil
}

// PostLimited is Post for tasks that count against SetLimit: with n tasks
// so posted waiting, it fails with an error wrapping unix.EAGAIN and queues
// nothing. After Seal or Close it fails with an error wrapping os.ErrClosed.
// Without a limit it costs what Post costs; with one, one atomic add more.
func (q *Queue) PostLimited(fn func()) error {
	if fn == nil {
		return errLimitedNil
	}
	return q.postLimited(fn)
}

func (q *Queue) postLimited(fn func()) error {
	if q.closed.Load() {
		return errLimitedClosed
	}
	if q.sealed.Load() {
		return errLimitedSealed
	}
	counted := q.limit > 0
	if counted && q.limited.Add(1) > q.limit {
		q.limited.Add(-1)
		return q.errFull
	}
	if err := q.claimAs(q.tail.Load(), fn, counted); err != nil {
		if counted {
			q.limited.Add(-1)
		}
		return errLimitedClosed
	}
	return nil
}

// PostContext is PostLimited that waits for room instead of failing with
// EAGAIN: it returns nil once fn is queued, ctx.Err() if ctx ends first
// (then fn is not queued), or the error PostLimited gives for anything but
// a full queue. It sleeps until the consumer runs a limited task, Seal or
// Close: it never polls.
func (q *Queue) PostContext(ctx context.Context, fn func()) error {
	if fn == nil {
		return opError("async: post context: nil task", ErrNilTask)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		err := q.postLimited(fn)
		if err != q.errFull || err == nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Count ourselves as a waiter before trying again: a consumer
		// that ran a limited task after that try sees the count and
		// wakes us; one that ran it before left room for the try.
		q.roomMu.Lock()
		q.waiters.Add(1)
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.roomMu.Unlock()
		err = q.postLimited(fn)
		if err != q.errFull {
			q.waiters.Add(-1)
			return err
		}
		select {
		case <-room:
			q.waiters.Add(-1)
		case <-ctx.Done():
			q.waiters.Add(-1)
			return ctx.Err()
		}
	}
}

// Limited returns how many tasks posted with PostLimited and PostContext
// wait (0 without a limit: they are counted only under one). While posts
// race for the last room it may read above the limit by the number of
// refused posts still undoing their count; the tasks queued never exceed it.
func (q *Queue) Limited() int { return int(q.limited.Load()) }

// Seal refuses further PostLimited and PostContext calls (an error wrapping
// os.ErrClosed) and wakes the PostContext calls waiting, while Post still
// queues: a consumer that is shutting down stops taking new work but can
// still receive what it owes itself. Tasks accepted before Seal stay queued.
func (q *Queue) Seal() {
	q.sealed.Store(true)
	q.wakeRoom()
}

// wakeRoom wakes every PostContext waiting, to try again.
func (q *Queue) wakeRoom() {
	q.roomMu.Lock()
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	q.roomMu.Unlock()
}

// claim puts fn in the next free slot, starting from s, which was the tail
// when it was loaded and may since have filled or been retired.
func (q *Queue) claim(s *segment, fn func()) error { return q.claimAs(s, fn, false) }

// claimAs is claim for a task that counts against the limit or not.
func (q *Queue) claimAs(s *segment, fn func(), counted bool) error {
	for {
		c := s.claimed.Add(1)
		if c&closedBit != 0 {
			// Close came first; the claim, beyond closeAt, counts
			// for nothing.
			return errPostClosed
		}
		if i := c&countMask - 1; i < segSize && c&notOpenBit == 0 {
			sl := &s.slots[i]
			sl.fn = fn
			sl.counted = counted
			sl.ready.Store(gen(c)) // publishes fn to the consumer
			q.signal()
			return nil
		}
		// s is full, or it was retired while we held it: move on.
		if err := q.grow(s); err != nil {
			return err
		}
		s = q.tail.Load()
	}
}

// grow links a new segment after full, if full is still the tail, and makes
// the new one the tail. A producer calls it when its claim found full
// without room, so it was full, or already retired and perhaps reused.
func (q *Queue) grow(full *segment) error {
	q.growMu.Lock()
	defer q.growMu.Unlock()
	t := q.tail.Load()
	if t != full {
		return nil // someone moved the tail on: retry there
	}
	c := t.claimed.Load()
	if c&closedBit != 0 {
		return errPostClosed
	}
	if c&countMask < segSize {
		// full was retired and reused as the tail since our claim,
		// which counted against its earlier incarnation: retry.
		return nil
	}
	var s *segment
	if n := len(q.free); n > 0 {
		s = q.free[n-1]
		q.free[n-1] = nil
		q.free = q.free[:n-1]
	} else if v := q.spill.Get(); v != nil {
		s = v.(*segment)
	} else {
		s = newSegment()
	}
	s.base.Store(t.base.Load() + segSize)
	t.next.Store(s)
	q.tail.Store(s)
	// Open only now that s is linked and the tail: a producer that took
	// s from the tail in its earlier incarnation may claim from it any
	// time after this, and its task must be on the list.
	s.open()
	return nil
}

// acceptedEnd returns the queue position just past the last accepted task.
// Any goroutine may call it.
func (q *Queue) acceptedEnd() uint64 {
	for {
		t := q.tail.Load()
		b := t.base.Load()
		c := t.claimed.Load()
		// If t was the tail before and after reading c, and its base did
		// not change, c is of the live tail (base grows with every reuse).
		// No segment after the tail is open, so nothing beyond it counts.
		if c&notOpenBit == 0 && q.tail.Load() == t && t.base.Load() == b {
			if c&closedBit == 0 {
				return b + accepted(c)
			}
			q.growMu.Lock() // Close sets closeAt under it, with closedBit
			n := t.closeAt
			q.growMu.Unlock()
			return b + n
		}
		// A segment is being linked, under growMu: wait for it.
		q.growMu.Lock()
		q.growMu.Unlock()
	}
}

// Wake makes Fd readable without queueing a task, coalescing like Post. It
// is how a consumer is asked to look at state other than the queue.
func (q *Queue) Wake() error {
	if q.closed.Load() {
		return errWakeClosed
	}
	q.signal()
	return nil
}

func (q *Queue) signal() {
	if q.pending.Load() || !q.pending.CompareAndSwap(false, true) {
		return
	}
	q.writes.Add(1)
	q.fdMu.RLock()
	// EAGAIN means the counter is already full, and so readable; any other
	// failure means the descriptor is gone, which only Close does.
	_ = q.efd.Write(1)
	q.fdMu.RUnlock()
}

// Drain runs the queued tasks on the calling goroutine, oldest first, and
// returns how many ran. Tasks posted while it runs are left for the next
// Drain (their Post has made Fd readable again), so one Drain is bounded.
//
// Drain resets the eventfd counter first, which a consumer polling Fd
// level-triggered needs. A consumer that registered Fd edge-triggered should
// call DrainEdge instead and save that system call.
//
// A drain also stops early at a task whose producer has claimed its place
// but not yet stored it (a producer descheduled in between): waiting there
// would hold the consumer for as long. That producer's wakeup, which
// follows its store, brings the consumer back.
//
// If a task panics, the panic propagates to the caller; the tasks not yet
// run stay at the head of the queue and Fd is made readable, so the next
// Drain resumes where this one stopped.
func (q *Queue) Drain() (ran int) {
	// Consume the wakeup before clearing pending, and clear pending before
	// looking for work: a producer whose task is not seen then sees
	// pending clear and writes again.
	q.fdMu.RLock()
	_, _ = q.efd.Read() // EAGAIN (nothing to consume) and closed are fine
	q.fdMu.RUnlock()
	ran, _ = q.drain(0, 0)
	return ran
}

// DrainEdge is Drain for a consumer that polls Fd edge-triggered
// (poller.EdgeTriggered): every wakeup write raises a new edge whatever the
// counter holds, so the counter need not be reset and the first task runs one
// system call sooner. The counter only grows by one per drain cycle; it would
// take centuries at millions of wakeups a second to reach its limit.
func (q *Queue) DrainEdge() (ran int) {
	ran, _ = q.drain(0, 0)
	return ran
}

// DrainEdgeN is DrainEdge that runs at most max of the tasks (max <= 0: no
// bound). more reports that tasks accepted before the drain began are still
// queued; Fd has then been made readable again (a new edge), so a consumer
// that goes back to its poller is woken for them at once.
//
// A drain a panic interrupted is finished by the next Drain, DrainEdge or
// DrainEdgeN, with the end and the budget it had, whatever that call asks
// for: a drain never runs a task accepted after it began, nor more than its
// budget, however many of its tasks panic.
func (q *Queue) DrainEdgeN(max int) (ran int, more bool) { return q.drain(max, 0) }

// DrainEdgeFor is DrainEdgeN that also stops once it has run for about d
// (d <= 0: no time bound), whichever bound comes first: the count bounds a
// drain of cheap tasks, the time one of costly tasks. The clock is read once
// every sliceCheck tasks, so at least that many run (or all, if fewer wait),
// and a single task longer than d is not cut short.
func (q *Queue) DrainEdgeFor(max int, d time.Duration) (ran int, more bool) { return q.drain(max, d) }

// sliceCheck is how many tasks run between two clock reads of a timed drain:
// a clock read costs about as much as a trivial task.
const sliceCheck = 16

func (q *Queue) drain(max int, d time.Duration) (ran int, more bool) {
	q.pending.Store(false)
	// A producer whose claim comes after this read sees pending clear,
	// so the tasks it leaves out get a wakeup of their own.
	end, left, bounded := q.acceptedEnd(), max, max > 0
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	if q.resuming {
		end, left, bounded, deadline = q.resumeEnd, q.resumeLeft, q.resumeBounded, q.resumeDeadline
		q.resuming = false
	}

	finished := false
	tookLimited := false
	stalled := false
	defer func() {
		q.ran.Add(uint64(ran))
		if !finished {
			// Unwinding from a panic: keep this drain's bounds for
			// the next call, and make sure someone comes back, for
			// the rest of the run and for tasks posted since the
			// drain began, whose wakeup this drain has consumed.
			q.resuming, q.resumeEnd, q.resumeLeft, q.resumeBounded = true, end, left, bounded
			q.resumeDeadline = deadline
			q.signal()
		} else if !stalled && q.pos.Load() < q.acceptedEnd() {
			// Left for next time (the budget, or tasks posted by a
			// producer that saw pending set by a resumed drain's
			// panic): a fresh edge brings the consumer back.
			q.signal()
		}
		if tookLimited && q.waiters.Load() > 0 {
			q.wakeRoom()
		}
	}()
	for {
		// Reloaded each time: a task may itself have drained.
		p := q.pos.Load()
		if p >= end {
			break
		}
		if bounded && left <= 0 {
			more = true
			break
		}
		if !deadline.IsZero() && ran > 0 && ran%sliceCheck == 0 && time.Now().After(deadline) {
			more = true
			break
		}
		if q.hidx == segSize {
			q.advance()
		}
		sl := &q.head.slots[q.hidx]
		if sl.ready.Load() != q.hgen && !q.awaitPublished(sl) {
			// Its producer was descheduled between the claim and the
			// store that publishes the task, and may stay so for a
			// scheduler time slice. Waiting here would hold up the
			// consumer's timers and io for as long; stop instead. The
			// producer's signal, after its store, wakes the consumer.
			stalled = true
			break
		}
		left--
		fn := sl.fn
		sl.fn = nil // drop the reference for the collector
		if sl.counted {
			// Running, no longer waiting: its room is free now.
			sl.counted = false
			q.limited.Add(-1)
			tookLimited = true
		}
		q.hidx++
		q.pos.Store(p + 1)
		fn()
		ran++
	}
	finished = true
	return ran, more
}

// awaitPublished waits briefly for the producer of a claimed slot to publish
// its task: in the common case it is a few instructions away. It reports
// whether it did.
func (q *Queue) awaitPublished(sl *slot) bool {
	for range publishSpins {
		if sl.ready.Load() == q.hgen {
			return true
		}
	}
	return false
}

// publishSpins bounds awaitPublished: about a microsecond of loads, against
// a producer preempted for milliseconds. It does not yield: a yield puts the
// consumer behind every runnable goroutine, the producers first.
const publishSpins = 512

// advance moves the consumer to the next segment, which exists since an
// accepted task lies beyond the head, and retires the old head for reuse.
func (q *Queue) advance() {
	old := q.head
	q.head = old.next.Load()
	q.hidx = 0
	q.hgen = gen(q.head.claimed.Load())
	old.retire()
	q.growMu.Lock()
	kept := len(q.free) < maxFree
	if kept {
		q.free = append(q.free, old)
	}
	q.growMu.Unlock()
	if !kept {
		q.spill.Put(old)
	}
}

// Len returns the number of tasks accepted and not yet run.
func (q *Queue) Len() int {
	taken := q.pos.Load() // first: it never passes the accepted end
	return int(q.acceptedEnd() - taken)
}

// Ran returns how many tasks have run, over all Drains.
func (q *Queue) Ran() uint64 { return q.ran.Load() }

// Wakeups returns how many eventfd writes producers have made: with
// coalescing, at most one per Drain.
func (q *Queue) Wakeups() uint64 { return q.writes.Load() }

// Close refuses further posts and releases the eventfd. Tasks accepted before
// Close remain and run on later Drains. A second Close returns an error
// wrapping os.ErrClosed.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return errCloseClosed
	}
	// A producer that passed the closed check above races to claim: the
	// claims before closedBit are accepted, those after are refused, and
	// with growMu held no segment is half-linked, so the tail is the only
	// open segment.
	q.growMu.Lock()
	t := q.tail.Load()
	old := t.claimed.Or(closedBit)
	t.closeAt = accepted(old)
	q.growMu.Unlock()

	q.wakeRoom() // waiting PostContext calls try again, and find it closed

	q.fdMu.Lock()
	defer q.fdMu.Unlock()
	if err := q.efd.Close(); err != nil {
		return fmt.Errorf("async: close: %w", err)
	}
	return nil
}
