package reliability

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// runFor runs l for about d (a timer stops it) and returns how many polls
// and ticks of a 1ms heartbeat timer it made meanwhile. The loop must be
// kept alive by something else too, or Run returns early.
func runFor(t *testing.T, l *loop.Loop, d time.Duration) (polls uint64, ticks int) {
	t.Helper()
	hb := l.NewTimer(func() { ticks++ })
	require.NoError(t, hb.Start(time.Millisecond, time.Millisecond))
	l.AfterFunc(d, func() { hb.Close(nil); l.Stop() })
	before := l.Stats().Iterations
	require.NoError(t, run(t, l))
	return l.Stats().Iterations - before, ticks
}

// reuseNumber opens a socketpair whose first end has descriptor number n
// (which must be free), moving it there with dup3 if the kernel picked
// another number.
func reuseNumber(t *testing.T, n int) *[2]int {
	t.Helper()
	q := socketPair(t)
	if q[0] != n {
		require.NoError(t, unix.Dup3(q[0], n, unix.O_CLOEXEC))
		require.NoError(t, unix.Close(q[0]))
		q[0] = n
	}
	return q
}

// busySpin is the most polls per heartbeat tick that still counts as the
// loop sleeping between timers rather than spinning on a stale event.
const busySpin = 20

// A watched descriptor closed behind the loop's back (no other duplicate of
// it open): epoll forgets it, the loop keeps running (its timer ticks, Run
// returns nil, it does not spin), the watcher is never called again, its
// Stop and Close work, and the number, once reused, can be watched again by
// a new watcher that alone gets its events. Watching the reused number
// before stopping the old watcher is EEXIST, as for any second watcher.
func TestWatchedFDClosedBehindTheLoop(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	keep, err := l.NewAsync(func() {})
	require.NoError(t, err)
	defer keep.Close(nil)

	p := socketPair(t)
	n := p[0]
	oldCalls := 0
	old, err := l.Watch(n, poller.Readable, func(poller.Events) {
		oldCalls++
		var b [64]byte
		_, _ = unix.Read(n, b[:]) // EBADF once closed: the loop must not care
	})
	require.NoError(t, err)
	_, err = unix.Write(p[1], []byte("before"))
	require.NoError(t, err)
	runFor(t, l, 5*time.Millisecond)
	require.Equal(t, 1, oldCalls)

	// Behind the loop's back.
	require.NoError(t, unix.Close(n))
	p[0] = -1
	_, _ = unix.Write(p[1], []byte("after")) // to nobody
	polls, ticks := runFor(t, l, 20*time.Millisecond)
	require.Equal(t, 1, oldCalls, "watcher called after its descriptor was closed")
	require.Greater(t, ticks, 0)
	require.LessOrEqual(t, polls, uint64(busySpin*(ticks+1)), "the loop spins: %d polls for %d ticks", polls, ticks)
	require.True(t, old.IsActive(), "the loop cannot know the descriptor went")

	// The number comes back as a new socket: the old watcher still holds
	// it in the loop's books.
	q := reuseNumber(t, n)
	_, err = l.Watch(n, poller.Readable, func(poller.Events) {})
	require.ErrorIs(t, err, unix.EEXIST)

	old.Stop() // epoll_ctl(DEL) finds the new socket unregistered: ignored
	require.False(t, old.IsActive())
	newCalls := 0
	nw, err := l.Watch(n, poller.Readable, func(poller.Events) {
		newCalls++
		var b [64]byte
		_, _ = unix.Read(n, b[:])
	})
	require.NoError(t, err)
	_, err = unix.Write(q[1], []byte("new"))
	require.NoError(t, err)
	runFor(t, l, 5*time.Millisecond)
	require.Equal(t, 1, newCalls)
	require.Equal(t, 1, oldCalls)

	// Close callbacks of both still run.
	closed := 0
	old.Close(func() { closed++ })
	nw.Close(func() { closed++ })
	keep.Close(nil)
	require.NoError(t, run(t, l))
	require.Equal(t, 2, closed)
}

// A ring reader closed while the loop still watches its descriptor: the
// loop keeps running without spinning, and the watcher stops and closes.
func TestRingReaderClosedWhileWatched(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	l := newLoop(t)
	keep, err := l.NewAsync(func() {})
	require.NoError(t, err)

	m, err := bpftest.NewRingBuf(1 << 14)
	require.NoError(t, err)
	defer m.Close()
	prod, err := bpftest.NewRingProducer(m, 8)
	require.NoError(t, err)
	defer prod.Close()
	r, err := ringbuf.NewRingReader(m.FD())
	require.NoError(t, err)
	got := 0
	var consumeErr error
	w, err := l.Watch(r.Fd(), poller.Readable, func(poller.Events) {
		_, consumeErr = r.Consume(func([]byte) { got++ })
	})
	require.NoError(t, err)
	require.NoError(t, prod.Emit(make([]byte, 8)))
	runFor(t, l, 5*time.Millisecond)
	require.Equal(t, 1, got)
	require.NoError(t, consumeErr)

	require.NoError(t, r.Close())
	require.NoError(t, prod.Emit(make([]byte, 8))) // into a ring nobody reads
	polls, ticks := runFor(t, l, 20*time.Millisecond)
	require.Equal(t, 1, got)
	require.LessOrEqual(t, polls, uint64(busySpin*(ticks+1)), "the loop spins: %d polls for %d ticks", polls, ticks)
	closed := false
	w.Close(func() { closed = true })
	keep.Close(nil)
	require.NoError(t, run(t, l))
	require.True(t, closed)
}

// The one case the loop cannot clean up after: a watched descriptor closed
// behind its back while a duplicate of it stays open (dup, fork,
// SCM_RIGHTS). epoll registers the open file, not the number, so the
// registration outlives the number and nothing can delete it any more.
// What still holds: the loop keeps running and returns nil, the stopped
// watcher's callback is never called, and a new watcher on the reused
// number gets its own events. What does not: while the file stays readable
// every poll returns at once, so the loop busy-polls until the duplicate is
// closed (logged as a figure; see RELIABILITY.md).
func TestWatchedFDClosedWithDuplicateOpen(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	keep, err := l.NewAsync(func() {})
	require.NoError(t, err)

	p := socketPair(t)
	n := p[0]
	dup, err := unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		if dup >= 0 {
			_ = unix.Close(dup)
		}
	})
	oldCalls := 0
	old, err := l.Watch(n, poller.Readable, func(poller.Events) { oldCalls++ })
	require.NoError(t, err)

	require.NoError(t, unix.Close(n))
	p[0] = -1
	_, err = unix.Write(p[1], []byte("x")) // the file behind dup is readable
	require.NoError(t, err)
	runFor(t, l, 5*time.Millisecond)
	require.Greater(t, oldCalls, 0, "an active watcher hears about its (still open) file")
	old.Stop()
	calls := oldCalls
	spinPolls, spinTicks := runFor(t, l, 20*time.Millisecond)
	require.Equal(t, calls, oldCalls, "stopped watcher called")

	// The number, reused, is watched normally alongside the stale
	// registration.
	q := reuseNumber(t, n)
	newCalls := 0
	nw, err := l.Watch(n, poller.Readable, func(poller.Events) {
		newCalls++
		var b [8]byte
		_, _ = unix.Read(n, b[:])
	})
	require.NoError(t, err)
	_, err = unix.Write(q[1], []byte("y"))
	require.NoError(t, err)
	runFor(t, l, 5*time.Millisecond)
	require.Equal(t, 1, newCalls)
	require.Equal(t, calls, oldCalls)

	// Closing the duplicate releases the file, and epoll with it.
	require.NoError(t, unix.Close(dup))
	dup = -1
	polls, ticks := runFor(t, l, 20*time.Millisecond)
	require.LessOrEqual(t, polls, uint64(busySpin*(ticks+1)), "still spinning after the duplicate closed")
	t.Logf("figures: stale registration: %d polls in 20ms (%d heartbeat ticks) while the duplicate was open; %d polls (%d ticks) after it closed",
		spinPolls, spinTicks, polls, ticks)

	old.Close(nil)
	nw.Close(nil)
	keep.Close(nil)
	require.NoError(t, run(t, l))
}
