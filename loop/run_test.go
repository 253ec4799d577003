package loop_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A loop with nothing to do returns at once in every mode and reports that
// it is not alive.
func TestRunEmptyLoopReturns(t *testing.T) {
	l := newLoop(t)
	require.False(t, l.Alive())
	run(t, l)
	alive, err := l.RunOnce()
	require.NoError(t, err)
	require.False(t, alive)
	alive, err = l.RunNoWait()
	require.NoError(t, err)
	require.False(t, alive)
}

// RunNoWait polls without blocking: a timer that is not due does not fire and
// the loop is still alive (libuv test-run-nowait.c).
func TestRunNoWaitDoesNotBlock(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() { t.Error("a timer due in an hour fired") })
	require.NoError(t, tm.Start(time.Hour, time.Hour))
	before := l.Stats().Iterations
	alive, err := l.RunNoWait()
	require.NoError(t, err)
	require.True(t, alive)
	require.Equal(t, before+1, l.Stats().Iterations, "RunNoWait runs exactly one iteration")
	tm.Stop()
}

// RunOnce runs one iteration per call; with idle hooks it never blocks, and
// the idle hooks stop after a fixed number of ticks (libuv test-run-once.c).
func TestRunOnceWithIdleHooks(t *testing.T) {
	l := newLoop(t)
	const ticks = 10
	calls := 0
	hooks := make([]*loop.Hook, 3)
	for i := range hooks {
		n := 0
		hooks[i] = l.NewIdle(func() {
			calls++
			n++
			if n == ticks {
				hooks[i].Stop()
			}
		})
		require.NoError(t, hooks[i].Start())
	}
	runs := 0
	for {
		alive, err := l.RunOnce()
		require.NoError(t, err)
		runs++
		if !alive {
			break
		}
		require.Less(t, runs, 1000, "RunOnce never reported the loop dead")
	}
	require.Equal(t, ticks*len(hooks), calls)
	require.Equal(t, ticks, runs, "one idle tick per RunOnce")
}

// RunOnce blocks for the next timer and returns once it ran; alive tells
// whether anything is left (libuv test-timer.c: timer_run_once).
func TestRunOnceBlocksForTimer(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.NewTimer(func() { calls++ })
	require.NoError(t, tm.Start(0, 0))
	alive, err := l.RunOnce()
	require.NoError(t, err)
	require.False(t, alive)
	require.Equal(t, 1, calls)

	require.NoError(t, tm.Start(time.Millisecond, 0))
	alive, err = l.RunOnce()
	require.NoError(t, err)
	require.False(t, alive)
	require.Equal(t, 2, calls, "RunOnce returned before the pending timer fired")

	closed := false
	tm.Close(func() { closed = true })
	alive, err = l.RunOnce()
	require.NoError(t, err)
	require.False(t, alive)
	require.True(t, closed)
}

// Stop from a callback ends Run after that iteration with handles still
// alive; a later RunNoWait and Run carry on (libuv test-loop-stop.c: loop_stop).
func TestStopFromCallback(t *testing.T) {
	l := newLoop(t)
	const ticks = 10
	prepCalls, timerCalls := 0, 0
	var prep *loop.Hook
	prep = l.NewPrepare(func() {
		prepCalls++
		if prepCalls == ticks {
			prep.Stop()
		}
	})
	require.NoError(t, prep.Start())
	var tm *loop.Timer
	tm = l.NewTimer(func() {
		timerCalls++
		if timerCalls == 1 {
			l.Stop()
		} else if timerCalls == ticks {
			tm.Stop()
		}
	})
	require.NoError(t, tm.Start(2*time.Millisecond, 2*time.Millisecond))

	run(t, l)
	require.Equal(t, 1, timerCalls)
	require.True(t, l.Alive())

	alive, err := l.RunNoWait()
	require.NoError(t, err)
	require.True(t, alive)
	require.Greater(t, prepCalls, 1)

	run(t, l)
	require.Equal(t, ticks, timerCalls)
	require.Equal(t, ticks, prepCalls)
	require.False(t, l.Alive())
}

// Stop before Run: as with uv_stop before uv_run, the next run returns at
// once without running any callback (not even a due timer), and only that
// run: the one after it proceeds normally (libuv: loop_stop_before_run).
func TestStopBeforeRun(t *testing.T) {
	l := newLoop(t)
	calls := 0
	tm := l.NewTimer(func() { calls++ })
	require.NoError(t, tm.Start(0, 0))
	l.Stop()
	run(t, l)
	require.Zero(t, calls, "a run stopped before it started ran a callback")
	require.True(t, l.Alive())

	run(t, l)
	require.Equal(t, 1, calls, "the stop request must not outlive the run it stopped")
}

// Stop from another goroutine wakes a loop blocked in poll with no timer.
func TestStopFromAnotherGoroutineWakesPoll(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) { t.Error("unexpected event") })
	require.NoError(t, err)
	started := make(chan struct{})
	prep := l.NewPrepare(func() {
		select {
		case <-started:
		default:
			close(started)
		}
	})
	require.NoError(t, prep.Start())
	prep.Unref()
	go func() {
		<-started
		time.Sleep(5 * time.Millisecond) // most likely blocked in poll by now
		l.Stop()
	}()
	run(t, l)
	require.True(t, l.Alive())
	w.Stop()
	prep.Stop()
}

// Run(ctx) returns ctx.Err() when the context ends, even while blocked in
// poll with no timer to wake it, and the loop can be run again afterwards.
func TestRunReturnsContextErrorWhileBlocked(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	calls := 0
	var w *loop.Watcher
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {
		calls++
		drain(efd)
		w.Stop()
	})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}()
	require.ErrorIs(t, runCtx(t, l, ctx), context.Canceled)
	require.Zero(t, calls)

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	err = runCtx(t, l, ctx)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	signal(t, efd)
	run(t, l)
	require.Equal(t, 1, calls, "the loop works after a cancelled run")
}

// runCtx runs l with ctx; should ctx's end fail to wake it, a Stop after
// runGuard does, and the test fails.
func runCtx(t *testing.T, l *loop.Loop, ctx context.Context) error {
	t.Helper()
	var fired atomic.Bool
	guard := time.AfterFunc(runGuard, func() {
		fired.Store(true)
		l.Stop()
	})
	err := l.Run(ctx)
	guard.Stop()
	require.False(t, fired.Load(), "the end of the context did not wake the loop")
	return err
}

// A context that has already ended makes Run return its error.
func TestRunWithEndedContext(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	require.NoError(t, tm.Start(time.Hour, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(runGuard):
		l.Stop()
		<-done
		t.Fatal("Run with a cancelled context blocked on a timer due in an hour")
	}
	tm.Stop()
}

// Alive reports referenced active handles, pending requests (queued work,
// posted tasks) and handles still closing.
func TestAlive(t *testing.T) {
	l := newLoop(t)
	require.False(t, l.Alive())

	tm := l.NewTimer(func() {})
	require.False(t, l.Alive(), "an initialised but inactive timer")
	require.NoError(t, tm.Start(time.Hour, 0))
	require.True(t, l.Alive(), "active timer")
	tm.Unref()
	require.False(t, l.Alive(), "unreferenced timer")
	tm.Ref()
	require.True(t, l.Alive())
	tm.Stop()
	require.False(t, l.Alive(), "stopped timer")

	work, err := l.QueueWork(func() {}, func(error) {})
	require.NoError(t, err)
	_ = work
	require.True(t, l.Alive(), "queued work")
	run(t, l)
	require.False(t, l.Alive(), "work done")

	require.NoError(t, l.Post(func() {}))
	require.True(t, l.Alive(), "posted task")
	run(t, l)
	require.False(t, l.Alive())

	tm.Close(nil)
	require.True(t, l.Alive(), "closing handle")
	run(t, l)
	require.False(t, l.Alive())
}

// Unreferenced active handles do not keep the loop alive: Run returns at once
// and none of their callbacks runs (libuv test-ref.c, and test-timer.c:
// timer_no_run_on_unref).
func TestUnrefHandleDoesNotKeepLoopAlive(t *testing.T) {
	cases := []struct {
		name string
		arm  func(t *testing.T, l *loop.Loop, fd int, cb func()) handle
	}{
		{"timer", func(t *testing.T, l *loop.Loop, _ int, cb func()) handle {
			tm := l.NewTimer(cb)
			require.NoError(t, tm.Start(0, 0))
			return tm
		}},
		{"repeating timer", func(t *testing.T, l *loop.Loop, _ int, cb func()) handle {
			tm := l.NewTimer(cb)
			require.NoError(t, tm.Start(0, time.Millisecond))
			return tm
		}},
		{"idle", hookCase((*loop.Loop).NewIdle)},
		{"prepare", hookCase((*loop.Loop).NewPrepare)},
		{"check", hookCase((*loop.Loop).NewCheck)},
		{"watcher", func(t *testing.T, l *loop.Loop, fd int, cb func()) handle {
			signal(t, fd)
			w, err := l.Watch(fd, poller.Readable, func(poller.Events) { cb() })
			require.NoError(t, err)
			return w
		}},
		{"async", func(t *testing.T, l *loop.Loop, _ int, cb func()) handle {
			a, err := l.NewAsync(cb)
			require.NoError(t, err)
			require.NoError(t, a.Send())
			return a
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			efd := eventFD(t)
			l := newLoop(t)
			unrefFirst := c.arm(t, l, efd, func() { t.Error("callback of an unreferenced handle ran") })
			unrefFirst.Unref()
			require.True(t, unrefFirst.IsActive())
			require.False(t, unrefFirst.HasRef())
			require.False(t, l.Alive())
			run(t, l)
			alive, err := l.RunOnce()
			require.NoError(t, err)
			require.False(t, alive)
		})
	}
}

// A referenced handle keeps Run going until it is stopped; unreferenced
// active handles beside it do not stop the loop from exiting after that.
func TestRefHandleKeepsLoopRunning(t *testing.T) {
	cases := []struct {
		name string
		arm  func(t *testing.T, l *loop.Loop, fd int, done func()) (start func())
	}{
		{"timer", func(t *testing.T, l *loop.Loop, _ int, done func()) func() {
			tm := l.NewTimer(done)
			require.NoError(t, tm.Start(5*time.Millisecond, 0))
			return func() {}
		}},
		{"idle", func(t *testing.T, l *loop.Loop, _ int, done func()) func() {
			n := 0
			var h *loop.Hook
			h = l.NewIdle(func() {
				if n++; n == 3 {
					h.Stop()
					done()
				}
			})
			require.NoError(t, h.Start())
			return func() {}
		}},
		{"watcher", func(t *testing.T, l *loop.Loop, fd int, done func()) func() {
			var w *loop.Watcher
			w, err := l.Watch(fd, poller.Readable, func(poller.Events) {
				drain(fd)
				w.Stop()
				done()
			})
			require.NoError(t, err)
			return func() { time.Sleep(5 * time.Millisecond); signal(t, fd) }
		}},
		{"async", func(t *testing.T, l *loop.Loop, _ int, done func()) func() {
			var a *loop.Async
			a, err := l.NewAsync(func() {
				a.Close(nil)
				done()
			})
			require.NoError(t, err)
			return func() { time.Sleep(5 * time.Millisecond); _ = a.Send() }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			efd := eventFD(t)
			l := newLoop(t)
			finished := 0
			start := c.arm(t, l, efd, func() { finished++ })

			// Unreferenced company that would keep a broken loop spinning.
			spin := l.NewIdle(func() {})
			require.NoError(t, spin.Start())
			spin.Unref()
			rep := l.NewTimer(func() {})
			require.NoError(t, rep.Start(time.Millisecond, time.Millisecond))
			rep.Unref()

			require.True(t, l.Alive())
			go start()
			run(t, l)
			require.Equal(t, 1, finished, "Run returned before the referenced handle was done")
			require.False(t, l.Alive())
			require.True(t, spin.IsActive())
			require.True(t, rep.IsActive())
			spin.Stop()
			rep.Stop()
		})
	}
}

// Ref state is a flag, not a counter, kept across Stop/Start, and may be
// changed before the handle is started (libuv test-ref.c: has_ref, idle_ref,
// timer_ref2).
func TestRefIsAFlagKeptAcrossStartStop(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	idle := l.NewIdle(func() {})
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	w.Stop()
	a, err := l.NewAsync(func() {})
	require.NoError(t, err)
	for _, h := range []handle{tm, idle, w, a} {
		require.True(t, h.HasRef())
		h.Unref()
		h.Unref()
		require.False(t, h.HasRef())
		h.Ref()
		require.True(t, h.HasRef(), "two Unrefs then one Ref: ref is a flag")
		h.Ref()
		require.True(t, h.HasRef())
		h.Unref() // unreferenced before being (re)started
	}
	require.NoError(t, tm.Start(0, 0))
	require.NoError(t, idle.Start())
	require.NoError(t, w.Start())
	require.True(t, a.IsActive())
	require.False(t, l.Alive(), "handles unreferenced before Start stay unreferenced")
	run(t, l)
	a.Close(nil)
}

// A prepare hook that unreferences itself lets the loop end (libuv test-ref.c:
// unref_in_prepare_cb).
func TestUnrefInCallback(t *testing.T) {
	l := newLoop(t)
	calls := 0
	var h *loop.Hook
	h = l.NewPrepare(func() {
		calls++
		h.Unref()
	})
	require.NoError(t, h.Start())
	run(t, l)
	require.Equal(t, 1, calls)
	require.True(t, h.IsActive())
	h.Stop()
}

// Stats moves as documented: one iteration per RunNoWait, one event per
// watcher callback, one per posted task, and coalesced wakeup writes.
func TestStats(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	// Something alive, or a run has no iteration to make.
	keep := l.NewTimer(func() {})
	require.NoError(t, keep.Start(time.Hour, 0))
	s0 := l.Stats()

	for range 3 {
		noWait(t, l)
	}
	s1 := l.Stats()
	require.Equal(t, s0.Iterations+3, s1.Iterations)
	require.Equal(t, s0.EventsDispatched, s1.EventsDispatched)

	events := 0
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) { events++ })
	require.NoError(t, err)
	signal(t, efd)
	noWait(t, l)
	noWait(t, l) // still readable: level-triggered
	s2 := l.Stats()
	require.Equal(t, 2, events)
	require.Equal(t, s1.EventsDispatched+2, s2.EventsDispatched)
	w.Stop()
	drain(efd)

	// Posts from another goroutine while the loop is not draining coalesce
	// into one wakeup write.
	ran := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			if err := l.Post(func() { ran++ }); err != nil {
				t.Error(err)
			}
		}
	}()
	<-done
	noWait(t, l)
	s3 := l.Stats()
	require.Equal(t, 100, ran)
	require.Equal(t, s2.TasksRun+100, s3.TasksRun)
	require.Equal(t, s2.WakeupWrites+1, s3.WakeupWrites, "100 posts before a drain are one wakeup write")
	require.Equal(t, s2.EventsDispatched, s3.EventsDispatched, "posted tasks are not io events")
	keep.Stop()

	// A run of a loop with nothing alive makes no iteration.
	noWait(t, l)
	require.Equal(t, s3.Iterations, l.Stats().Iterations)
	noWait(t, l)
	require.Equal(t, s3.Iterations, l.Stats().Iterations)
}

// handle is what every loop handle offers.
type handle interface {
	Close(cb func())
	IsActive() bool
	IsClosing() bool
	Ref()
	Unref()
	HasRef() bool
}

var (
	_ handle = (*loop.Timer)(nil)
	_ handle = (*loop.Watcher)(nil)
	_ handle = (*loop.Hook)(nil)
	_ handle = (*loop.Async)(nil)
)

func hookCase(mk func(*loop.Loop, func()) *loop.Hook) func(t *testing.T, l *loop.Loop, _ int, cb func()) handle {
	return func(t *testing.T, l *loop.Loop, _ int, cb func()) handle {
		h := mk(l, cb)
		require.NoError(t, h.Start())
		return h
	}
}
