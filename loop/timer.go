package loop

import (
	"fmt"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// noop is the callback of an AfterFunc timer given a nil fn.
func noop() {}

// Timer runs a callback once after a timeout, and then every repeat interval
// if repeat is non-zero.
//
// Its due time and start order live in the loop's timer heap, not in the
// Timer, which keeps it in the 48-byte size class (the registry link for
// Walk fits in the padding of handle).
type Timer struct {
	handle
	cb      func()
	repeat  time.Duration
	index   int32 // position in the heap, -1 when not in it
	ready   bool  // collected as due in the current pass
	started bool  // Start was called at least once
	// ephemeral: made by AfterFunc, not in the loop's registry: Walk finds
	// it in the timer heap while it is active, and a fired one the caller
	// dropped is garbage.
	ephemeral bool
}

// NewTimer creates a stopped timer that will run cb on the loop. Like every
// handle, it belongs to the loop until closed: Walk sees it, started or
// stopped, and the loop holds it until it (or the loop) is closed.
func (l *Loop) NewTimer(cb func()) *Timer {
	t := &Timer{cb: cb, index: -1}
	t.init(l)
	l.track(t)
	return t
}

// AfterFunc starts a one-shot timer that runs fn after d, like
// time.AfterFunc but on the loop. As with time.AfterFunc, a negative d is
// taken as 0: the timer fires on the next timer pass. A nil fn makes a timer
// that fires after d and calls nothing: it keeps the loop alive until then,
// as a sleep on the loop would (time.AfterFunc with a nil f panics when it
// fires, which the loop never does). On a closed loop the timer returned is
// not started (its Start says why: os.ErrClosed).
//
// The loop holds the timer only while it is active (see Walk): once it fired
// or was stopped, a timer the caller dropped is garbage.
func (l *Loop) AfterFunc(d time.Duration, fn func()) *Timer {
	if fn == nil {
		fn = noop
	}
	t := &Timer{cb: fn, index: -1, ephemeral: true}
	t.init(l)
	_ = t.Start(max(d, 0), 0)
	return t
}

// Start arms the timer to fire timeout from the loop time (Now), and then
// every repeat if repeat > 0. Starting an active timer restarts it. Negative
// durations are EINVAL; a closing timer, or one of a closed loop, is
// os.ErrClosed.
func (t *Timer) Start(timeout, repeat time.Duration) error {
	if err := t.errIfClosing("timer start"); err != nil {
		return err
	}
	if t.loop.closed() {
		return closedError("timer start")
	}
	if t.cb == nil {
		return nilError("timer start")
	}
	if timeout < 0 || repeat < 0 {
		return opError(fmt.Sprintf("loop: timer start(%v, %v): negative duration", timeout, repeat), unix.EINVAL)
	}
	t.Stop()
	t.started = true
	t.repeat = repeat
	l := t.loop
	due := l.now + int64(timeout)
	if due < l.now { // overflow: never, in practice
		due = math.MaxInt64
	}
	l.timers.push(timerEntry{due: due, seq: l.timerSeq, t: t})
	l.timerSeq++
	t.setActive(true)
	return nil
}

// Stop disarms the timer. A timer already due in the current pass does not
// fire.
func (t *Timer) Stop() {
	t.ready = false
	if t.index >= 0 {
		t.loop.timers.remove(t)
	}
	t.setActive(false)
}

// Again restarts a repeating timer with its repeat as the timeout; it stops
// a timer whose repeat is zero. A timer never started is EINVAL, as in
// libuv.
func (t *Timer) Again() error {
	if err := t.errIfClosing("timer again"); err != nil {
		return err
	}
	if !t.started {
		return opError("loop: timer again: never started", unix.EINVAL)
	}
	if t.repeat == 0 {
		t.Stop()
		return nil
	}
	return t.Start(t.repeat, t.repeat)
}

// SetRepeat changes the repeat interval. It takes effect at the next re-arm;
// a timer that is running now keeps its current due time. A negative d is
// taken as 0, no repeat: SetRepeat has no error to return, and a timer that
// stops repeating is what a negative interval can sensibly mean (as
// time.Ticker.Reset refuses one, Start refuses a negative repeat with
// EINVAL, where an error can be returned).
func (t *Timer) SetRepeat(d time.Duration) {
	if d < 0 {
		d = 0
	}
	t.repeat = d
}

// Repeat returns the repeat interval.
func (t *Timer) Repeat() time.Duration { return t.repeat }

// DueIn returns how long until the timer fires, from the loop time; 0 when
// it is due or not active.
func (t *Timer) DueIn() time.Duration {
	if !t.active || t.index < 0 {
		return 0
	}
	if d := t.loop.timers[t.index].due - t.loop.now; d > 0 {
		return time.Duration(d)
	}
	return 0
}

// Close stops the timer and runs cb (if not nil) on the loop's next close
// phase.
func (t *Timer) Close(cb func()) {
	if t.closing {
		return
	}
	t.Stop()
	t.close(cb)
}

// runTimers fires the timers due at the loop time, libuv's two-step way:
// first take every due timer off the heap, then run them in due order. A
// timer (re)started by a callback goes back on the heap, not on this pass's
// list, so it cannot run twice in one pass.
func (l *Loop) runTimers() {
	l.ready = l.timers.takeDue(l.now, l.ready)
	for _, e := range l.ready {
		// Stopped, as Stop would (takeDue took it off the heap), but due
		// in this pass.
		e.t.index = -1
		e.t.ready = true
		e.t.setActive(false)
	}
	for i, e := range l.ready {
		l.ready[i] = timerEntry{}
		t := e.t
		if l.panicErr != nil {
			// The run is ending on a panic: what has not fired yet is
			// still due, with its place in the order, and fires first
			// in the next run.
			if t.ready {
				t.ready = false
				l.timers.push(e)
				t.setActive(true)
			}
			continue
		}
		if !t.ready {
			continue // stopped by an earlier callback of this pass
		}
		t.ready = false
		if t.repeat > 0 {
			_ = t.Start(t.repeat, t.repeat)
		}
		l.call(t.cb)
	}
	l.ready = l.ready[:0]
}
