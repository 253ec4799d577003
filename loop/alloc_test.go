package loop_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

// Dispatching an io event allocates nothing: each run makes an eventfd
// readable, RunNoWait delivers it, the callback drains it.
func TestAllocsPerIOEvent(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	var buf [8]byte
	events := 0
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {
		events++
		_, _ = unix.Read(efd, buf[:])
	})
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(200, func() {
		_, _ = unix.Write(efd, one[:])
		_, _ = l.RunNoWait()
	})
	require.Equal(t, 201, events, "every run dispatched one event")
	require.Zero(t, allocs, "allocations per io event dispatch")
	w.Stop()
}

// Firing a timer allocates nothing: Start with a zero timeout, then RunNoWait.
func TestAllocsPerTimerFire(t *testing.T) {
	l := newLoop(t)
	fires := 0
	tm := l.NewTimer(func() { fires++ })
	allocs := testing.AllocsPerRun(200, func() {
		_ = tm.Start(0, 0)
		_, _ = l.RunNoWait()
	})
	require.Equal(t, 201, fires, "every run fired the timer")
	require.Zero(t, allocs, "allocations per timer start+fire")

	// A repeating timer re-arms without allocating either.
	var rep int
	tr := l.NewTimer(func() { rep++ })
	require.NoError(t, tr.Start(0, 1))
	allocs = testing.AllocsPerRun(100, func() {
		l.UpdateTime()
		_, _ = l.RunNoWait()
	})
	require.Greater(t, rep, 0)
	require.Zero(t, allocs, "allocations per repeating timer fire")
	tr.Stop()
}

// Posting allocates nothing beyond the closure, which the test reuses so it
// is not counted: the queue, the wakeup and the drain are allocation-free.
func TestAllocsPerPost(t *testing.T) {
	l := newLoop(t)
	ran := 0
	fn := func() { ran++ }
	allocs := testing.AllocsPerRun(200, func() {
		_ = l.Post(fn)
		_, _ = l.RunNoWait()
	})
	require.Equal(t, 201, ran)
	require.Zero(t, allocs, "allocations per Post")

	// Several posts per drain.
	allocs = testing.AllocsPerRun(100, func() {
		for range 8 {
			_ = l.Post(fn)
		}
		_, _ = l.RunNoWait()
	})
	require.Zero(t, allocs, "allocations per batch of posts")
}

// Async.Send and its callback allocate nothing.
func TestAllocsPerAsyncSend(t *testing.T) {
	l := newLoop(t)
	calls := 0
	a, err := l.NewAsync(func() { calls++ })
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(200, func() {
		_ = a.Send()
		_, _ = l.RunNoWait()
	})
	require.Equal(t, 201, calls)
	require.Zero(t, allocs)
	a.Close(nil)
}
