package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A close hook runs once, in the close phase, before the close callback,
// whoever closed the handle; never inside the Close call.
func TestCloseHookRunsBeforeCloseCallback(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()

	var order []string
	tm := l.NewTimer(func() {})
	tm.SetCloseHook(func() { order = append(order, "hook") })
	tm.Close(func() { order = append(order, "cb") })
	require.Empty(t, order, "the hook ran inside Close")
	run(t, l)
	require.Equal(t, []string{"hook", "cb"}, order)
}

// Every kind of handle carries a hook; a nil fn removes it and a second one
// replaces the first.
func TestCloseHookOnEveryHandleKind(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	w, err := l.Watch(fds[0], poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	a, err := l.NewAsync(func() {})
	require.NoError(t, err)
	idle := l.NewIdle(func() {})
	tm := l.NewTimer(func() {})
	removed := l.NewCheck(func() {})

	ran := map[string]int{}
	w.SetCloseHook(func() { ran["replaced"]++ })
	w.SetCloseHook(func() { ran["watcher"]++ })
	a.SetCloseHook(func() { ran["async"]++ })
	idle.SetCloseHook(func() { ran["idle"]++ })
	tm.SetCloseHook(func() { ran["timer"]++ })
	removed.SetCloseHook(func() { ran["removed"]++ })
	removed.SetCloseHook(nil)

	w.Close(nil)
	a.Close(nil)
	idle.Close(nil)
	tm.Close(nil)
	removed.Close(nil)
	w.Close(nil) // a second Close changes nothing
	run(t, l)
	require.Equal(t, map[string]int{"watcher": 1, "async": 1, "idle": 1, "timer": 1}, ran)
}

// The loop's Close closes active handles without close callbacks; their
// hooks still run, so an object built from them releases what it holds.
func TestCloseHookRunsWhenTheLoopCloses(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	tm := l.NewTimer(func() {})
	require.NoError(t, tm.Start(time.Hour, 0))
	hooked := 0
	tm.SetCloseHook(func() { hooked++ })
	require.NoError(t, l.Close())
	require.Equal(t, 1, hooked)

	// After the loop's Close there is no close phase: a handle closed now
	// runs its hook at once.
	late := l.NewTimer(func() {})
	lateRan := 0
	late.SetCloseHook(func() { lateRan++ })
	late.Close(func() { t.Error("close callback ran after the loop's Close") })
	require.Equal(t, 1, lateRan)
}

// A hook that panics is handled like any callback: with a panic handler the
// close callback still runs after it; without one the run ends and the close
// callback runs on the next one, ahead of handles closed later.
func TestCloseHookPanic(t *testing.T) {
	var handled []any
	l, err := loop.New(loop.WithPanicHandler(func(v any) { handled = append(handled, v) }))
	require.NoError(t, err)
	defer l.Close()
	var order []string
	tm := l.NewTimer(func() {})
	tm.SetCloseHook(func() { panic("hook") })
	tm.Close(func() { order = append(order, "cb") })
	run(t, l)
	require.Equal(t, []any{"hook"}, handled)
	require.Equal(t, []string{"cb"}, order)

	bare, err := loop.New()
	require.NoError(t, err)
	defer bare.Close()
	order = nil
	first := bare.NewTimer(func() {})
	first.SetCloseHook(func() { panic("hook") })
	first.Close(func() { order = append(order, "first") })
	second := bare.NewTimer(func() {})
	second.Close(func() { order = append(order, "second") })
	var pe *loop.PanicError
	require.ErrorAs(t, runErr(t, bare), &pe)
	require.Empty(t, order)
	third := bare.NewTimer(func() {})
	third.Close(func() { order = append(order, "third") })
	run(t, bare)
	require.Equal(t, []string{"first", "second", "third"}, order)
}
