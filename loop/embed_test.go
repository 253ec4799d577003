package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/poller"
)

// The loop can be embedded in another event loop through Fd and
// BackendTimeout: an outer poller waits on the loop's fd for at most
// BackendTimeout, then RunNoWait runs what is ready. A timer fires through
// the outer wait's timeout, and a task posted from another goroutine wakes
// the outer wait through the fd (libuv test-embed.c).
func TestEmbedInOuterPoller(t *testing.T) {
	idle := eventFD(t) // never readable: keeps the inner loop alive without a deadline
	l := newLoop(t)
	outer, err := poller.New()
	require.NoError(t, err)
	defer outer.Close()
	const token = 42
	require.NoError(t, outer.Add(l.Fd(), poller.Readable, token))
	events := make([]poller.Event, 4)

	// Phase 1: a timer, driven by the outer wait's timeout.
	fired := 0
	l.AfterFunc(5*time.Millisecond, func() { fired++ })
	for rounds := 0; fired == 0; rounds++ {
		require.Less(t, rounds, 1000, "timer never fired through the outer loop")
		d := l.BackendTimeout()
		require.GreaterOrEqual(t, d, time.Duration(0), "a timer is pending: the wait must be bounded")
		require.LessOrEqual(t, d, 5*time.Millisecond)
		_, err := outer.Wait(events, d)
		require.NoError(t, err)
		_, err = l.RunNoWait()
		require.NoError(t, err)
	}
	require.Equal(t, 1, fired)
	require.False(t, l.Alive())

	// Phase 2: nothing due, so the outer loop may block indefinitely; only
	// the loop's fd becoming readable can wake it.
	w, err := l.Watch(idle, poller.Readable, func(poller.Events) { t.Error("unexpected event") })
	require.NoError(t, err)
	noWait(t, l) // settle any registration work
	require.Equal(t, time.Duration(-1), l.BackendTimeout())

	posted := 0
	go func() {
		time.Sleep(5 * time.Millisecond)
		if err := l.Post(func() { posted++ }); err != nil {
			t.Error(err)
		}
	}()
	for rounds := 0; posted == 0; rounds++ {
		require.Less(t, rounds, 100, "posted task never ran through the outer loop")
		d := l.BackendTimeout()
		if d < 0 {
			d = runGuard // a hang guard, not a deadline: a correct loop wakes us via the fd
		}
		n, err := outer.Wait(events, d)
		require.NoError(t, err)
		require.Equal(t, 1, n, "outer wait timed out: the loop's fd never became readable")
		require.Equal(t, uint64(token), events[0].Token)
		_, err = l.RunNoWait()
		require.NoError(t, err)
	}
	require.Equal(t, 1, posted)
	w.Stop()
	require.NoError(t, outer.Delete(l.Fd()))
}
