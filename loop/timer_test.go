package loop_test

import (
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A fresh timer is inactive, referenced, has no repeat and is not due
// (libuv test-timer.c: timer_init).
func TestTimerInitialState(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() { t.Error("a timer that was never started fired") })
	require.Zero(t, tm.Repeat())
	require.Zero(t, tm.DueIn())
	require.False(t, tm.IsActive())
	require.False(t, tm.IsClosing())
	require.True(t, tm.HasRef())
	require.False(t, l.Alive(), "an inactive timer does not keep the loop alive")
	run(t, l)
}

// A miniature of libuv's timer test: one-shot timers that close themselves,
// a repeating timer that closes itself on its fifth call, a started-then-
// stopped timer that never fires, and no timer firing early.
func TestTimerOneShotRepeatingAndStopped(t *testing.T) {
	l := newLoop(t)
	l.UpdateTime()
	start := l.Now()

	var onceCalls, onceCloses, repeatCalls, repeatCloses int
	for i := range 5 {
		var tm *loop.Timer
		tm = l.NewTimer(func() {
			require.False(t, tm.IsActive(), "a one-shot timer is inactive in its own callback")
			onceCalls++
			tm.Close(func() { onceCloses++ })
		})
		require.NoError(t, tm.Start(time.Duration(i)*2*time.Millisecond, 0))
	}
	var rep *loop.Timer
	rep = l.NewTimer(func() {
		require.True(t, rep.IsActive(), "a repeating timer is re-armed before its callback runs")
		repeatCalls++
		if repeatCalls == 5 {
			rep.Close(func() { repeatCloses++ })
		}
	})
	require.NoError(t, rep.Start(2*time.Millisecond, 2*time.Millisecond))
	never := l.NewTimer(func() { t.Error("a stopped timer fired") })
	require.NoError(t, never.Start(2*time.Millisecond, 2*time.Millisecond))
	never.Stop()
	never.Unref()

	run(t, l)
	require.Equal(t, 5, onceCalls)
	require.Equal(t, 5, onceCloses)
	require.Equal(t, 5, repeatCalls)
	require.Equal(t, 1, repeatCloses)
	require.GreaterOrEqual(t, l.Now().Sub(start), 8*time.Millisecond,
		"the last one-shot was due 8ms after start; the loop cannot have got there sooner")
}

// Timers due at the same time fire in the order they were started, whatever
// the order they were created in; an earlier due time wins over start order
// (libuv test-timer.c: timer_order).
func TestTimerEqualDueTimeFiresInStartOrder(t *testing.T) {
	l := newLoop(t)
	var order []int
	timers := make([]*loop.Timer, 5)
	for i := range timers {
		timers[i] = l.NewTimer(func() { order = append(order, i) })
	}

	for _, tm := range timers {
		require.NoError(t, tm.Start(0, 0))
	}
	run(t, l)
	require.Equal(t, []int{0, 1, 2, 3, 4}, order)

	order = nil
	for _, i := range []int{3, 1, 4, 0, 2} {
		require.NoError(t, timers[i].Start(time.Millisecond, 0))
	}
	run(t, l)
	require.Equal(t, []int{3, 1, 4, 0, 2}, order, "same due time: start order")

	order = nil
	require.NoError(t, timers[0].Start(2*time.Millisecond, 0))
	require.NoError(t, timers[1].Start(time.Millisecond, 0))
	run(t, l)
	require.Equal(t, []int{1, 0}, order, "the earlier due time fires first")
}

// A timer started (or restarted) from a timer callback does not run in the
// same timer pass, even with a zero timeout: a check hook always runs between
// the two. Otherwise a timer re-arming itself at 0 would starve the loop.
func TestTimerStartedFromTimerCallbackRunsInALaterPass(t *testing.T) {
	l := newLoop(t)
	var rec []string
	chk := l.NewCheck(func() { rec = append(rec, "check") })
	require.NoError(t, chk.Start())
	chk.Unref()

	var b, self *loop.Timer
	b = l.NewTimer(func() { rec = append(rec, "B") })
	a := l.NewTimer(func() {
		rec = append(rec, "A")
		require.NoError(t, b.Start(0, 0))
	})
	selfRuns := 0
	self = l.NewTimer(func() {
		selfRuns++
		rec = append(rec, "S")
		if selfRuns < 3 {
			require.NoError(t, self.Start(0, 0))
		}
	})
	require.NoError(t, a.Start(0, 0))
	require.NoError(t, self.Start(0, 0))
	run(t, l)

	ia, ib := slices.Index(rec, "A"), slices.Index(rec, "B")
	require.True(t, ia >= 0 && ib > ia, "order %v", rec)
	require.Contains(t, rec[ia+1:ib], "check", "B ran in the pass that started it: %v", rec)
	require.Equal(t, 3, selfRuns)
	var prev = -1
	for i, e := range rec {
		if e != "S" {
			continue
		}
		if prev >= 0 {
			require.Contains(t, rec[prev+1:i], "check", "a self-restarting timer ran twice in one pass: %v", rec)
		}
		prev = i
	}
}

// A timer that was due but is stopped or closed by an earlier callback of the
// same pass does not fire (libuv test-timer.c: timer_huge_timeout closes due
// and not-due timers from a callback).
func TestTimerStoppedWhileDueDoesNotFire(t *testing.T) {
	l := newLoop(t)
	var fired []string
	var b, c *loop.Timer
	a := l.NewTimer(func() {
		fired = append(fired, "A")
		b.Stop()
		c.Close(nil)
	})
	b = l.NewTimer(func() { fired = append(fired, "B") })
	c = l.NewTimer(func() { fired = append(fired, "C") })
	require.NoError(t, a.Start(0, 0))
	require.NoError(t, b.Start(0, 0))
	require.NoError(t, c.Start(0, 0))
	time.Sleep(time.Millisecond) // all three are overdue when the loop looks
	run(t, l)
	require.Equal(t, []string{"A"}, fired)
	require.False(t, b.IsActive())
	require.True(t, c.IsClosing())

	// The stopped timer is still usable.
	require.NoError(t, b.Start(0, 0))
	run(t, l)
	require.Equal(t, []string{"A", "B"}, fired)
}

// The ordering rules hold when thousands of timers are due in one pass (the
// loop then takes them off the heap in one sweep rather than one by one):
// due time first, then start order; a timer an earlier callback stops does
// not fire, one it restarts fires in a later pass, and a due timer waiting
// its turn is already inactive, as in libuv.
func TestTimerManyDueAtOnceKeepOrder(t *testing.T) {
	l := newLoop(t)
	const n = 3000
	type fire struct{ timeout, start int }
	var got []fire
	passes := 0 // check hooks seen: one between two timer passes
	chk := l.NewCheck(func() { passes++ })
	require.NoError(t, chk.Start())
	chk.Unref()

	timers := make([]*loop.Timer, n)
	timeouts := make([]int, n)
	restartedIn := -1
	for i := range timers {
		timeouts[i] = (i * 7919) % 3 // 0, 1 or 2 ms, in no order of start
		timers[i] = l.NewTimer(func() {
			got = append(got, fire{timeouts[i], i})
			if len(got) == 1 {
				// The first to fire stops every tenth of the others,
				// restarts timer 1 and sees a due one inactive.
				for j := 10; j < n; j += 10 {
					if j != i {
						timers[j].Stop()
					}
				}
				if i != 1 {
					require.False(t, timers[1].IsActive(), "a due timer waiting its turn is inactive")
					require.NoError(t, timers[1].Start(0, 0))
					restartedIn = passes
				}
			}
			if i == 1 && restartedIn >= 0 {
				require.Greater(t, passes, restartedIn, "a timer restarted in a pass ran in that pass")
			}
		})
	}
	for i, tm := range timers {
		require.NoError(t, tm.Start(time.Duration(timeouts[i])*time.Millisecond, 0))
	}
	time.Sleep(3 * time.Millisecond) // all of them are due when the loop looks
	run(t, l)

	var want []fire
	for i := range n {
		if i%10 == 0 && i != 0 && i != got[0].start {
			continue
		}
		if i == 1 && got[0].start != 1 {
			continue // restarted: fires once, after the rest
		}
		want = append(want, fire{timeouts[i], i})
	}
	slices.SortFunc(want, func(a, b fire) int {
		if a.timeout != b.timeout {
			return a.timeout - b.timeout
		}
		return a.start - b.start
	})
	if got[0].start != 1 {
		want = append(want, fire{timeouts[1], 1})
	}
	require.Equal(t, want, got)
}

// A repeat set by an earlier callback of the same pass on a timer due in it
// takes effect when that timer fires (it re-arms with the new repeat), and
// the timer's own repeat is dropped likewise: what fires is read at its turn.
func TestTimerSetRepeatOnADueTimerFromAnEarlierCallback(t *testing.T) {
	l := newLoop(t)
	var b, c *loop.Timer
	fired := map[string]int{}
	a := l.NewTimer(func() {
		fired["A"]++
		b.SetRepeat(time.Hour)
		c.SetRepeat(0)
	})
	b = l.NewTimer(func() {
		fired["B"]++
		require.True(t, b.IsActive(), "B re-armed with the repeat set by A before its callback")
	})
	c = l.NewTimer(func() {
		fired["C"]++
		require.False(t, c.IsActive(), "C's repeat was dropped by A: it is not re-armed")
	})
	require.NoError(t, a.Start(0, 0))
	require.NoError(t, b.Start(0, 0))
	require.NoError(t, c.Start(0, time.Millisecond))
	time.Sleep(time.Millisecond)
	_, err := l.RunNoWait()
	require.NoError(t, err)
	require.Equal(t, map[string]int{"A": 1, "B": 1, "C": 1}, fired)
	require.True(t, b.IsActive())
	require.Equal(t, time.Hour, b.Repeat())
	require.Greater(t, b.DueIn(), 59*time.Minute)
	b.Stop()
	require.False(t, c.IsActive())
	run(t, l)
}

// Huge timeouts neither overflow into the past nor keep a loop from ending
// once closed (libuv test-timer.c: timer_huge_timeout, timer_huge_repeat).
func TestTimerHugeTimeout(t *testing.T) {
	l := newLoop(t)
	huge1 := l.NewTimer(func() { t.Error("huge timer fired") })
	huge2 := l.NewTimer(func() { t.Error("huge timer fired") })
	var tiny *loop.Timer
	tinyCalls := 0
	tiny = l.NewTimer(func() {
		tinyCalls++
		tiny.Close(nil)
		huge1.Close(nil)
		huge2.Close(nil)
	})
	// Loop time well past its zero, so now+timeout would overflow.
	time.Sleep(time.Millisecond)
	l.UpdateTime()
	require.NoError(t, tiny.Start(time.Millisecond, 0))
	require.NoError(t, huge1.Start(1<<62, 0))
	require.NoError(t, huge2.Start(math.MaxInt64, math.MaxInt64))
	require.Greater(t, huge1.DueIn(), 100*365*24*time.Hour)
	require.Greater(t, huge2.DueIn(), 100*365*24*time.Hour)
	require.LessOrEqual(t, tiny.DueIn(), time.Millisecond)
	run(t, l)
	require.Equal(t, 1, tinyCalls)
}

// Starting a started timer replaces its timeout (libuv: timer_start_twice).
func TestTimerStartTwiceReplacesTimeout(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.NewTimer(func() { calls++ })
	require.NoError(t, tm.Start(24*time.Hour, 0))
	require.NoError(t, tm.Start(time.Millisecond, 0))
	run(t, l)
	require.Equal(t, 1, calls)
	require.False(t, tm.IsActive())
}

// Again on a timer that was never started is EINVAL; on a repeating timer it
// restarts the countdown from the repeat value (libuv: timer_again).
func TestTimerAgain(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	err := tm.Again()
	require.ErrorIs(t, err, unix.EINVAL)
	require.False(t, tm.IsActive())

	require.NoError(t, tm.Start(time.Hour, 20*time.Millisecond))
	require.Greater(t, tm.DueIn(), 30*time.Minute)
	require.NoError(t, tm.Again())
	require.True(t, tm.IsActive())
	require.LessOrEqual(t, tm.DueIn(), 20*time.Millisecond, "Again restarts with the repeat as timeout")

	tm.Stop()
	require.False(t, tm.IsActive())
	require.NoError(t, tm.Again())
	require.True(t, tm.IsActive(), "Again re-arms a stopped repeating timer")

	tm.Stop()
	tm.SetRepeat(0)
	require.NoError(t, tm.Again(), "Again on a started non-repeating timer is not an error")
	require.False(t, tm.IsActive(), "and does not start it")
}

// Port of libuv's test-timer-again.c: repeat1 keeps pushing repeat2 back with
// Again, so repeat2 only fires once repeat1 is gone; repeat2 then sets its
// repeat to 0 from its callback, which takes effect at the re-arm after the
// next expiry: it fires a second time, inactive, and closes itself.
func TestTimerAgainPostponesAndSetRepeatTakesEffectAtRearm(t *testing.T) {
	l := newLoop(t)
	dummy := l.NewTimer(func() {})
	require.ErrorIs(t, dummy.Again(), unix.EINVAL)
	dummy.Unref()

	var r1Calls, r2Calls, closes int
	r2Allowed := false
	var r1, r2 *loop.Timer
	r1 = l.NewTimer(func() {
		require.Equal(t, 2*time.Millisecond, r1.Repeat())
		r1Calls++
		require.NoError(t, r2.Again())
		if r1Calls == 10 {
			r1.Close(func() { closes++ })
			r2Allowed = true
		}
	})
	r2 = l.NewTimer(func() {
		require.True(t, r2Allowed, "repeat2 fired while repeat1 kept postponing it")
		r2Calls++
		if r2.Repeat() == 0 {
			require.False(t, r2.IsActive())
			r2.Close(func() { closes++ })
			return
		}
		require.Equal(t, 50*time.Millisecond, r2.Repeat())
		r2.SetRepeat(0)
	})

	require.NoError(t, r1.Start(2*time.Millisecond, 0))
	require.Zero(t, r1.Repeat())
	r1.SetRepeat(2 * time.Millisecond)
	require.Equal(t, 2*time.Millisecond, r1.Repeat())
	require.NoError(t, r2.Start(50*time.Millisecond, 50*time.Millisecond))
	require.Equal(t, 50*time.Millisecond, r2.Repeat())

	run(t, l)
	require.Equal(t, 10, r1Calls)
	require.Equal(t, 2, r2Calls)
	require.Equal(t, 2, closes)
}

// SetRepeat does not move a pending timeout; it is used when the timer is
// next re-armed after firing.
func TestTimerSetRepeatTakesEffectAtNextRearm(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.NewTimer(func() { calls++ })
	require.NoError(t, tm.Start(time.Hour, 0))
	tm.SetRepeat(2 * time.Millisecond)
	require.Equal(t, 2*time.Millisecond, tm.Repeat())
	require.Greater(t, tm.DueIn(), 30*time.Minute, "SetRepeat moved the pending timeout")

	require.NoError(t, tm.Start(0, 0))
	tm.SetRepeat(time.Hour)
	noWait(t, l)
	require.Equal(t, 1, calls)
	require.True(t, tm.IsActive(), "a timer with a repeat is re-armed after firing")
	require.Greater(t, tm.DueIn(), 30*time.Minute, "re-armed with the new repeat")
	tm.Stop()
	require.Zero(t, tm.DueIn(), "a stopped timer is not due")
}

// An overdue repeating timer fires once per RunOnce / RunNoWait, not once per
// missed period nor once before and once after the poll (libuv:
// timer_no_double_call_once, timer_no_double_call_nowait).
func TestTimerOverdueRepeatFiresOncePerRun(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.NewTimer(func() { calls++ })
	require.NoError(t, tm.Start(10*time.Millisecond, 10*time.Millisecond))

	time.Sleep(30 * time.Millisecond)
	alive, err := l.RunOnce()
	require.NoError(t, err)
	require.True(t, alive)
	require.Equal(t, 1, calls, "RunOnce")

	time.Sleep(30 * time.Millisecond)
	alive, err = l.RunNoWait()
	require.NoError(t, err)
	require.True(t, alive)
	require.Equal(t, 2, calls, "RunNoWait")
	tm.Stop()
}

// Negative durations are EINVAL and leave the timer as it was.
func TestTimerNegativeDurationIsEINVAL(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() { t.Error("timer with a rejected start fired") })
	require.ErrorIs(t, tm.Start(-time.Nanosecond, 0), unix.EINVAL)
	require.ErrorIs(t, tm.Start(0, -time.Millisecond), unix.EINVAL)
	require.False(t, tm.IsActive())
	require.False(t, l.Alive())
	run(t, l)
}

// Starting a closing timer is refused (libuv: timer_is_closing, which is
// EINVAL there; here use after Close is os.ErrClosed).
func TestTimerStartWhileClosing(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() { t.Error("closed timer fired") })
	tm.Close(nil)
	require.ErrorIs(t, tm.Start(0, 0), os.ErrClosed)
	require.False(t, tm.IsActive())
	run(t, l)
}

// A timer never fires before its timeout has passed on the clock the loop's
// time is taken from (libuv: timer_early_check).
func TestTimerNeverFiresEarly(t *testing.T) {
	l := newLoop(t)
	start := time.Now()
	l.UpdateTime()
	var elapsed time.Duration
	tm := l.NewTimer(func() { elapsed = time.Since(start) })
	require.NoError(t, tm.Start(10*time.Millisecond, 0))
	run(t, l)
	require.GreaterOrEqual(t, elapsed, 10*time.Millisecond)
}

// AfterFunc returns a started one-shot timer.
func TestAfterFunc(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.AfterFunc(time.Millisecond, func() { calls++ })
	require.True(t, tm.IsActive())
	require.Zero(t, tm.Repeat())
	require.True(t, l.Alive())
	run(t, l)
	require.Equal(t, 1, calls)
	require.False(t, tm.IsActive())
}

// Now is the loop's cached time: constant within a callback however long it
// runs, refreshed by UpdateTime and by every run, even one with nothing to do
// (libuv test-loop-time.c: loop_update_time).
func TestNowIsCachedAndUpdateTimeRefreshesIt(t *testing.T) {
	l := newLoop(t)
	var first, later, updated time.Time
	l.AfterFunc(0, func() {
		first = l.Now()
		time.Sleep(2 * time.Millisecond)
		later = l.Now()
		l.UpdateTime()
		updated = l.Now()
	})
	run(t, l)
	require.True(t, first.Equal(later), "Now changed inside one callback: %v then %v", first, later)
	require.True(t, updated.After(later), "UpdateTime did not move Now")
	require.GreaterOrEqual(t, updated.Sub(later), 2*time.Millisecond)

	before := l.Now()
	time.Sleep(2 * time.Millisecond)
	require.True(t, l.Now().Equal(before), "Now moved between runs without UpdateTime")
	require.False(t, noWait(t, l))
	require.True(t, l.Now().After(before), "a run did not update the loop time")
}

// BackendTimeout follows the nearest timer, and is -1 when only handles
// without a deadline are active (libuv test-loop-time.c: loop_backend_timeout).
func TestBackendTimeoutFollowsNearestTimer(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	w, err := l.Watch(efd, poller.Readable, func(ev poller.Events) {})
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), l.BackendTimeout(), "no timer: block until an event")

	tm := l.NewTimer(func() {})
	require.NoError(t, tm.Start(time.Hour, 0))
	d := l.BackendTimeout()
	require.Greater(t, d, 59*time.Minute)
	require.LessOrEqual(t, d, time.Hour)

	near := l.NewTimer(func() {})
	require.NoError(t, near.Start(time.Second, 0))
	d = l.BackendTimeout()
	require.Greater(t, d, time.Duration(0))
	require.LessOrEqual(t, d, time.Second)

	near.Stop()
	require.Greater(t, l.BackendTimeout(), 59*time.Minute)
	tm.Stop()
	w.Stop()
}
