package loop_test

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

var hookKinds = []struct {
	name string
	mk   func(*loop.Loop, func()) *loop.Hook
}{
	{"idle", (*loop.Loop).NewIdle},
	{"prepare", (*loop.Loop).NewPrepare},
	{"check", (*loop.Loop).NewCheck},
}

// Hooks of one kind run in start order; restarting a hook moves it to the
// back; starting a started hook changes nothing.
func TestHooksRunInStartOrder(t *testing.T) {
	for _, k := range hookKinds {
		t.Run(k.name, func(t *testing.T) {
			l := newLoop(t)
			var order []int
			hooks := make([]*loop.Hook, 4)
			for i := range hooks {
				hooks[i] = k.mk(l, func() { order = append(order, i) })
			}
			for _, i := range []int{2, 0, 3, 1} {
				require.NoError(t, hooks[i].Start())
			}
			noWait(t, l)
			require.Equal(t, []int{2, 0, 3, 1}, order)

			order = nil
			hooks[2].Stop()
			require.NoError(t, hooks[2].Start())
			require.NoError(t, hooks[0].Start()) // already started: no change
			noWait(t, l)
			require.Equal(t, []int{0, 3, 1, 2}, order)

			for _, h := range hooks {
				h.Stop()
				require.False(t, h.IsActive())
			}
			order = nil
			noWait(t, l)
			require.Empty(t, order)
		})
	}
}

// Within one pass over the hooks of a kind, a hook started by a callback
// waits for the next iteration and a hook stopped by an earlier callback does
// not run.
func TestHookStartedOrStoppedDuringPass(t *testing.T) {
	for _, k := range hookKinds {
		t.Run(k.name, func(t *testing.T) {
			l := newLoop(t)
			var order []string
			var late, victim *loop.Hook
			first := k.mk(l, func() {
				order = append(order, "first")
				require.NoError(t, late.Start())
				victim.Stop()
			})
			victim = k.mk(l, func() { order = append(order, "victim") })
			late = k.mk(l, func() { order = append(order, "late") })
			require.NoError(t, first.Start())
			require.NoError(t, victim.Start())
			noWait(t, l)
			require.Equal(t, []string{"first"}, order)
			first.Stop()
			noWait(t, l)
			require.Equal(t, []string{"first", "late"}, order)
			late.Stop()
		})
	}
}

// One iteration runs idle, then prepare, then the poll's io callbacks, then
// check, then close callbacks.
func TestHookPhaseOrder(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	var order []string
	rec := func(s string) func() { return func() { order = append(order, s) } }
	idle := l.NewIdle(rec("idle"))
	prep := l.NewPrepare(rec("prepare"))
	chk := l.NewCheck(rec("check"))
	closing := l.NewTimer(func() {})
	// Started in reverse phase order so start order cannot explain the result.
	require.NoError(t, chk.Start())
	require.NoError(t, prep.Start())
	require.NoError(t, idle.Start())
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) { order = append(order, "io") })
	require.NoError(t, err)
	signal(t, efd)
	closing.Close(rec("close"))

	noWait(t, l)
	require.Equal(t, []string{"idle", "prepare", "io", "check", "close"}, order)

	order = nil
	noWait(t, l)
	require.Equal(t, []string{"idle", "prepare", "io", "check"}, order, "once per iteration")
	w.Stop()
	idle.Stop()
	prep.Stop()
	chk.Stop()
}

// Prepare hooks run before the loop blocks and check hooks right after it
// wakes: a prepare hook sees the loop about to block for the timer, the check
// hook sees the wakeup's result.
func TestPrepareBeforePollCheckAfter(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	var order []string
	prep := l.NewPrepare(func() {
		order = append(order, "prepare")
		go func() { time.Sleep(5 * time.Millisecond); signal(t, efd) }()
	})
	chk := l.NewCheck(func() { order = append(order, "check") })
	require.NoError(t, prep.Start())
	require.NoError(t, chk.Start())
	prep.Unref()
	chk.Unref()
	var w *loop.Watcher
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {
		order = append(order, "io")
		drain(efd)
		w.Stop()
	})
	require.NoError(t, err)
	alive, err := l.RunOnce() // blocks in poll until the goroutine writes
	require.NoError(t, err)
	require.False(t, alive)
	require.Equal(t, []string{"prepare", "io", "check"}, order)
	prep.Stop()
	chk.Stop()
}

// While an idle hook is active the loop does not block: the poll timeout is
// zero even with a distant timer.
func TestIdleMakesPollTimeoutZero(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	require.NoError(t, tm.Start(time.Hour, 0))
	require.Greater(t, l.BackendTimeout(), time.Duration(0))
	idle := l.NewIdle(func() {})
	require.NoError(t, idle.Start())
	require.Zero(t, l.BackendTimeout())
	idle.Stop()
	require.Greater(t, l.BackendTimeout(), time.Duration(0))

	// Prepare and check hooks, unlike idle, do not stop the loop blocking.
	prep := l.NewPrepare(func() {})
	require.NoError(t, prep.Start())
	require.Greater(t, l.BackendTimeout(), time.Duration(0))
	prep.Stop()
	tm.Stop()
}

// A spinning idle hook does not starve timers or check hooks; the timer
// closes everything and the loop ends (libuv test-idle.c: idle_starvation).
func TestIdleDoesNotStarveTimers(t *testing.T) {
	l := newLoop(t)
	idleCalls, checkCalls, timerCalls, closes := 0, 0, 0, 0
	idle := l.NewIdle(func() { idleCalls++ })
	chk := l.NewCheck(func() { checkCalls++ })
	var tm *loop.Timer
	tm = l.NewTimer(func() {
		timerCalls++
		idle.Close(func() { closes++ })
		chk.Close(func() { closes++ })
		tm.Close(func() { closes++ })
	})
	require.NoError(t, idle.Start())
	require.NoError(t, chk.Start())
	require.NoError(t, tm.Start(5*time.Millisecond, 0))
	run(t, l)
	require.Greater(t, idleCalls, 0)
	require.Greater(t, checkCalls, 0)
	require.Equal(t, 1, timerCalls)
	require.Equal(t, 3, closes)
}

// Use of a closed hook is an error.
func TestHookStartAfterClose(t *testing.T) {
	for _, k := range hookKinds {
		t.Run(k.name, func(t *testing.T) {
			l := newLoop(t)
			h := k.mk(l, func() { t.Error("closed hook ran") })
			require.NoError(t, h.Start())
			h.Close(nil)
			require.False(t, h.IsActive())
			require.True(t, h.IsClosing())
			require.ErrorIs(t, h.Start(), os.ErrClosed)
			run(t, l)
		})
	}
}
