package loop_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A watcher reports readiness with the events that hold, level-triggered,
// until stopped; Start re-arms it with its last events; Modify changes them.
func TestWatcherReadableWritable(t *testing.T) {
	sp := socketPair(t)
	l := newLoop(t)
	var got []poller.Events
	w, err := l.Watch(sp[0], poller.Readable, func(ev poller.Events) { got = append(got, ev) })
	require.NoError(t, err)
	require.Equal(t, sp[0], w.Fd())
	require.True(t, w.IsActive())

	noWait(t, l)
	require.Empty(t, got, "nothing to read yet")

	_, err = unix.Write(sp[1], []byte("x"))
	require.NoError(t, err)
	noWait(t, l)
	noWait(t, l)
	require.Len(t, got, 2, "level-triggered: readable on every iteration until read")
	require.NotZero(t, got[0]&poller.Readable, "events %v", got[0])

	w.Stop()
	require.False(t, w.IsActive())
	got = nil
	noWait(t, l)
	require.Empty(t, got, "stopped watcher called")

	require.NoError(t, w.Start())
	require.True(t, w.IsActive())
	noWait(t, l)
	require.Len(t, got, 1, "Start re-armed with the last events")

	require.NoError(t, w.Modify(poller.Writable))
	got = nil
	noWait(t, l)
	require.Len(t, got, 1)
	require.NotZero(t, got[0]&poller.Writable)
	require.Zero(t, got[0]&poller.Readable, "Modify did not drop Readable: %v", got[0])
	w.Stop()
}

// A second active watcher on one fd is EEXIST; once the first is stopped the
// fd can be watched again, and the stopped one cannot be restarted while the
// new one is active.
func TestWatcherDuplicateFdIsEEXIST(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	first, err := l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	_, err = l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.ErrorIs(t, err, unix.EEXIST)

	first.Stop()
	calls := 0
	second, err := l.Watch(efd, poller.Readable, func(poller.Events) { calls++ })
	require.NoError(t, err, "watching an fd whose watcher was stopped")
	require.ErrorIs(t, first.Start(), unix.EEXIST)

	signal(t, efd)
	noWait(t, l)
	require.Equal(t, 1, calls)
	second.Close(nil)
	drain(efd)

	// A closed watcher frees the fd too.
	third, err := l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	third.Stop()
}

// A watcher's callback that stops (or closes) another watcher whose event is
// in the same poll batch, closes that fd, and puts a new descriptor under the
// same number with a new watcher: the stale event reaches neither the old
// callback nor the new watcher (libuv's uv__platform_invalidate_fd).
func TestWatcherStaleEventsAreNotDelivered(t *testing.T) {
	for _, how := range []string{"stop", "close"} {
		t.Run(how, func(t *testing.T) {
			a, b := socketPair(t), socketPair(t)
			l := newLoop(t)
			type side struct {
				pair  [2]int
				w     *loop.Watcher
				calls int
			}
			sides := [2]*side{{pair: a}, {pair: b}}
			var reused *loop.Watcher
			reusedCalls := 0
			reusedFd := -1
			for i, s := range sides {
				other := sides[1-i]
				w, err := l.Watch(s.pair[0], poller.Readable, func(poller.Events) {
					s.calls++
					if reused != nil {
						return
					}
					// First callback of the batch: invalidate the other.
					if how == "stop" {
						other.w.Stop()
					} else {
						other.w.Close(nil)
					}
					num := other.pair[0]
					require.NoError(t, unix.Close(num))
					efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
					require.NoError(t, err)
					if efd != num { // the kernel may already have handed out the freed number
						require.NoError(t, unix.Dup3(efd, num, unix.O_CLOEXEC))
						require.NoError(t, unix.Close(efd))
					}
					reusedFd = num // closed at cleanup by socketPair
					reused, err = l.Watch(num, poller.Readable, func(poller.Events) { reusedCalls++ })
					require.NoError(t, err, "watching the reused fd number")
				})
				require.NoError(t, err)
				s.w = w
			}
			_, err := unix.Write(a[1], []byte("a"))
			require.NoError(t, err)
			_, err = unix.Write(b[1], []byte("b"))
			require.NoError(t, err)

			ev0 := l.Stats().EventsDispatched
			noWait(t, l)
			require.NotNil(t, reused, "no watcher ran")
			require.Equal(t, 1, sides[0].calls+sides[1].calls, "the invalidated watcher's event was delivered")
			require.Zero(t, reusedCalls, "the old fd's event was delivered to the new watcher")
			require.Equal(t, ev0+1, l.Stats().EventsDispatched)

			noWait(t, l)
			require.Zero(t, reusedCalls, "the new fd is not readable")

			signal(t, reusedFd)
			noWait(t, l)
			require.Equal(t, 1, reusedCalls, "the new watcher works")
			reused.Stop()
			for _, s := range sides {
				s.w.Stop()
			}
		})
	}
}

// Many watchers closed together from one callback: each close callback runs
// once, no event arrives after Close, and the loop ends (libuv test-poll-close.c).
func TestWatcherCloseMany(t *testing.T) {
	const n = 32
	pairs := make([][2]int, n)
	for i := range pairs {
		pairs[i] = socketPair(t)
	}
	l := newLoop(t)
	watchers := make([]*loop.Watcher, n)
	closes := make([]int, n)
	closing := false
	for i := range watchers {
		w, err := l.Watch(pairs[i][0], poller.Readable|poller.Writable, func(poller.Events) {
			require.False(t, closing, "event delivered to a closed watcher")
			if closing {
				return
			}
			closing = true
			for j, w := range watchers {
				w.Close(func() { closes[j]++ })
			}
		})
		require.NoError(t, err)
		watchers[i] = w
	}
	run(t, l)
	for i, c := range closes {
		require.Equal(t, 1, c, "close callback of watcher %d", i)
		require.True(t, watchers[i].IsClosing())
		require.False(t, watchers[i].IsActive())
	}
	require.ErrorIs(t, watchers[0].Modify(poller.Readable), os.ErrClosed)
	require.ErrorIs(t, watchers[0].Start(), os.ErrClosed)
}

// Watching an fd that is not open is EBADF, and nothing is left registered.
func TestWatchBadFd(t *testing.T) {
	l := newLoop(t)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC) // a number the loop does not hold
	require.NoError(t, err)
	require.NoError(t, unix.Close(efd))
	_, err = l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.ErrorIs(t, err, unix.EBADF)
	require.False(t, l.Alive())
	_, err = l.Watch(-1, poller.Readable, func(poller.Events) {})
	require.Error(t, err)
}
