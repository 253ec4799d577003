package poller_test

import (
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/poller"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newPoller(t *testing.T) *poller.Poller {
	t.Helper()
	p, err := poller.New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// socketpair returns two connected non-blocking stream sockets closed at
// cleanup.
func socketpair(t *testing.T) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func wait(t *testing.T, p *poller.Poller, timeout time.Duration) []poller.Event {
	t.Helper()
	evs := make([]poller.Event, 8)
	n, err := p.Wait(evs, timeout)
	require.NoError(t, err)
	return evs[:n]
}

func TestEventsString(t *testing.T) {
	require.Equal(t, "Readable|Writable", (poller.Readable | poller.Writable).String())
	require.Equal(t, "0", poller.Events(0).String())
	require.Equal(t, "Hangup|EdgeTriggered|0x800", (poller.Hangup | poller.EdgeTriggered | 0x800).String())
}

func TestAddModifyDeleteErrors(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)

	require.NoError(t, p.Add(a, poller.Readable, 1))
	require.ErrorIs(t, p.Add(a, poller.Readable, 2), unix.EEXIST)
	require.NoError(t, p.Modify(a, poller.Writable, 3))
	require.NoError(t, p.Delete(a))
	require.ErrorIs(t, p.Delete(a), unix.ENOENT)
	require.ErrorIs(t, p.Modify(a, poller.Readable, 4), unix.ENOENT)

	require.ErrorIs(t, p.Add(1<<20, poller.Readable, 5), unix.EBADF)
	require.ErrorIs(t, p.Add(-1, poller.Readable, 5), unix.EBADF)

	f, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	require.NoError(t, err)
	defer f.Close()
	rawFd := int(f.Fd()) // a regular file: blocking mode does not matter here
	require.ErrorIs(t, p.Add(rawFd, poller.Readable, 6), unix.EPERM)
}

func TestTokensRoundTrip(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	const token = 0xfeedface_12345678
	require.NoError(t, p.Add(a, poller.Writable, token))
	evs := wait(t, p, 0)
	require.Len(t, evs, 1)
	require.Equal(t, uint64(token), evs[0].Token)
	require.Equal(t, poller.Writable, evs[0].Events)
}

func TestLevelTriggeredRepeats(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable, 1))
	require.Empty(t, wait(t, p, 0))
	_, err := unix.Write(b, []byte("x"))
	require.NoError(t, err)
	for range 3 {
		evs := wait(t, p, 0)
		require.Len(t, evs, 1, "level-triggered: reported while data is unread")
		require.Equal(t, poller.Readable, evs[0].Events)
	}
}

func TestEdgeTriggeredOncePerChange(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable|poller.EdgeTriggered, 1))
	_, err := unix.Write(b, []byte("x"))
	require.NoError(t, err)
	require.Len(t, wait(t, p, 0), 1)
	require.Empty(t, wait(t, p, 0), "edge-triggered: no report without a new change")
	_, err = unix.Write(b, []byte("y"))
	require.NoError(t, err)
	require.Len(t, wait(t, p, 0), 1, "new data is a new edge")
}

func TestOneShotUntilRearmed(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable|poller.OneShot, 1))
	_, err := unix.Write(b, []byte("x"))
	require.NoError(t, err)
	require.Len(t, wait(t, p, 0), 1)
	require.Empty(t, wait(t, p, 0), "one-shot: disabled after one event")
	require.NoError(t, p.Modify(a, poller.Readable|poller.OneShot, 2))
	evs := wait(t, p, 0)
	require.Len(t, evs, 1, "Modify re-arms")
	require.Equal(t, uint64(2), evs[0].Token)
}

func TestHangupAndErrorAlwaysReported(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable|poller.ReadHangup, 1))
	require.NoError(t, unix.Shutdown(b, unix.SHUT_RDWR))
	evs := wait(t, p, 0)
	require.Len(t, evs, 1)
	require.NotZero(t, evs[0].Events&poller.ReadHangup)
	require.NotZero(t, evs[0].Events&poller.Hangup, "HUP is reported without being asked for: %v", evs[0].Events)
}

func TestWaitBlocksUntilReady(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable, 9))
	go func() {
		time.Sleep(10 * time.Millisecond)
		unix.Write(b, []byte("x"))
	}()
	evs := wait(t, p, -1)
	require.Len(t, evs, 1)
	require.Equal(t, uint64(9), evs[0].Token)
}

func TestZeroTimeoutNeverBlocks(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable, 1))
	// Nothing is ready: each call must return at once with nothing. A
	// blocking call would hang the test, which the runner's timeout reports.
	for range 1000 {
		require.Empty(t, wait(t, p, 0))
	}
}

func TestTimeoutExpires(t *testing.T) {
	p := newPoller(t)
	start := time.Now()
	require.Empty(t, wait(t, p, 15*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(start), 15*time.Millisecond, "never returns before the timeout")
}

// TestEINTRRetriedWithTimeLeft sends a storm of signals at the exact thread
// blocked in Wait. Each interrupts epoll_pwait with EINTR; Wait must resume
// rather than report it, and must still neither return early nor late by the
// whole timeout again.
func TestEINTRRetriedWithTimeLeft(t *testing.T) {
	p := newPoller(t)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	defer signal.Stop(sigs)

	tid := make(chan int)
	type result struct {
		n       int
		err     error
		elapsed time.Duration
	}
	done := make(chan result)
	const timeout = 200 * time.Millisecond
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		evs := make([]poller.Event, 1)
		start := time.Now()
		n, err := p.Wait(evs, timeout)
		done <- result{n, err, time.Since(start)}
	}()
	target := <-tid
	var sent atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if unix.Tgkill(unix.Getpid(), target, unix.SIGUSR1) == nil {
				sent.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	r := <-done
	close(stop)
	require.NoError(t, r.err)
	require.Zero(t, r.n)
	require.Greater(t, sent.Load(), int64(10), "the storm reached the waiting thread")
	require.GreaterOrEqual(t, r.elapsed, timeout, "an interrupted wait is resumed, not ended early")
	require.Less(t, r.elapsed, 2*timeout, "resumed with the time left, not the whole timeout each time")
}

func TestUseAfterClose(t *testing.T) {
	p, err := poller.New()
	require.NoError(t, err)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), os.ErrClosed)
	require.ErrorIs(t, p.Add(0, poller.Readable, 1), os.ErrClosed)
	require.ErrorIs(t, p.Modify(0, poller.Readable, 1), os.ErrClosed)
	require.ErrorIs(t, p.Delete(0), os.ErrClosed)
	_, err = p.Wait(make([]poller.Event, 1), 0)
	require.ErrorIs(t, err, os.ErrClosed)
	require.Equal(t, -1, p.Fd())
}

func TestWaitRejectsEmptySlice(t *testing.T) {
	p := newPoller(t)
	_, err := p.Wait(nil, 0)
	require.ErrorIs(t, err, unix.EINVAL)
}

func TestWaitAllocatesNothing(t *testing.T) {
	p := newPoller(t)
	a, b := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable, 1))
	_, err := unix.Write(b, []byte("x"))
	require.NoError(t, err)
	evs := make([]poller.Event, 16)
	allocs := testing.AllocsPerRun(1000, func() {
		if n, err := p.Wait(evs, 0); n != 1 || err != nil {
			panic("expected one event")
		}
		if n, err := p.Wait(evs, time.Millisecond); n != 1 || err != nil {
			panic("expected one event")
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkWaitReady(b *testing.B) {
	p, _ := poller.New()
	defer p.Close()
	fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	_ = p.Add(fds[0], poller.Readable, 1)
	unix.Write(fds[1], []byte("x"))
	evs := make([]poller.Event, 16)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.Wait(evs, 0)
	}
}
