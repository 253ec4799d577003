package loop_test

import (
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// walked returns the handles Walk visits, counting visits.
func walked(l *loop.Loop) map[loop.Handle]int {
	seen := map[loop.Handle]int{}
	l.Walk(func(h loop.Handle) { seen[h]++ })
	return seen
}

// Walk visits every handle not yet closed, started or stopped, once each;
// closing handles until their close phase; never closed ones.
func TestWalkVisitsEveryHandleNotYetClosed(t *testing.T) {
	efd := eventFD(t)
	sp := socketPair(t)
	l := newLoop(t)

	started := allHandles(t, l, efd)
	stoppedTimer := l.NewTimer(func() {})
	neverStarted := l.NewIdle(func() {})
	stoppedWatcher, err := l.Watch(sp[0], poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	stoppedWatcher.Stop()
	pending := l.AfterFunc(time.Hour, func() {})
	fired := l.AfterFunc(0, func() {})
	closingTimer := l.NewTimer(func() {})
	closingTimer.Close(nil)
	sig := l.NewSignal(func(os.Signal) {}) // stopped: a started one adds the relay's own Async

	want := []loop.Handle{stoppedTimer, neverStarted, stoppedWatcher, pending, fired, closingTimer, sig}
	for _, h := range started {
		want = append(want, h)
	}
	seen := walked(l)
	require.Len(t, seen, len(want))
	for _, h := range want {
		require.Equal(t, 1, seen[h], "%T visited %d times", h, seen[h])
	}

	noWait(t, l) // fires the AfterFunc timer; closes the closing timer
	seen = walked(l)
	require.Len(t, seen, len(want)-2)
	require.Zero(t, seen[fired], "a fired AfterFunc timer is not the loop's any more")
	require.Zero(t, seen[closingTimer], "a closed handle")

	// Restarted, the AfterFunc timer is walkable again; stopped, it is not.
	require.NoError(t, fired.Start(time.Hour, 0))
	require.Equal(t, 1, walked(l)[fired])
	fired.Stop()
	require.Zero(t, walked(l)[fired])

	// Closing everything from a Walk ends the loop.
	l.Walk(func(h loop.Handle) { h.Close(nil) })
	run(t, l)
	require.Empty(t, walked(l))
	l.Walk(nil) // visits nothing
}

// Handles made by fn are not visited; handles fn closes are still visited
// (they are closing, not closed); fn may make and close handles freely.
func TestWalkWhileChanging(t *testing.T) {
	l := newLoop(t)
	a := l.NewTimer(func() {})
	b := l.NewTimer(func() {})
	visits := 0
	var made []*loop.Timer
	l.Walk(func(h loop.Handle) {
		visits++
		made = append(made, l.NewTimer(func() {}))
		a.Close(nil)
		b.Close(nil)
	})
	require.Equal(t, 2, visits)
	require.Len(t, walked(l), 4, "the two closing and the two made")
	for _, m := range made {
		m.Close(nil)
	}
	run(t, l)
	require.Empty(t, walked(l))
}

// A fired AfterFunc timer the caller dropped is garbage, as a fired
// time.AfterFunc timer is; a NewTimer timer is the loop's until closed.
func TestFiredAfterFuncIsCollected(t *testing.T) {
	l := newLoop(t)
	collected := make(chan struct{})
	func() {
		tm := l.AfterFunc(0, func() {})
		runtime.AddCleanup(tm, func(struct{}) { close(collected) }, struct{}{})
	}()
	run(t, l)
	deadline := time.Now().Add(runGuard)
	for {
		runtime.GC()
		select {
		case <-collected:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("a fired AfterFunc timer the caller dropped was kept alive")
		}
		time.Sleep(time.Millisecond)
	}
}

// Every handle type is a Handle.
var (
	_ loop.Handle = (*loop.Timer)(nil)
	_ loop.Handle = (*loop.Watcher)(nil)
	_ loop.Handle = (*loop.Hook)(nil)
	_ loop.Handle = (*loop.Async)(nil)
	_ loop.Handle = (*loop.Signal)(nil)
)

// From a timer callback, Walk sees the AfterFunc timers due in the same
// pass that have not fired yet, and closing them keeps them from firing.
func TestWalkFromTimerSeesDueAfterFuncs(t *testing.T) {
	l := newLoop(t)
	var second *loop.Timer
	secondFired := false
	var seen map[loop.Handle]int
	l.AfterFunc(0, func() {
		seen = walked(l)
		second.Close(nil)
	})
	second = l.AfterFunc(0, func() { secondFired = true })
	run(t, l)
	require.Equal(t, 1, seen[second], "a due AfterFunc timer not yet fired")
	require.Len(t, seen, 1, "the firing one is no longer active")
	require.False(t, secondFired)
}

// Handles closed by a function given to Walk run their close hooks, in the
// close phase, as when their owner closes them.
func TestWalkCloseRunsCloseHooks(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	hs := allHandles(t, l, efd)
	hooks := 0
	for _, h := range hs {
		h.(interface{ SetCloseHook(func()) }).SetCloseHook(func() { hooks++ })
	}
	l.Walk(func(h loop.Handle) { h.Close(nil) })
	require.Zero(t, hooks, "a hook ran inside Close")
	run(t, l)
	require.Equal(t, len(hs), hooks)
}
