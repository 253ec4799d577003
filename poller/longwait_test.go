package poller

import (
	"errors"
	"math"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestWaitMsecRoundsUpWithoutOverflow(t *testing.T) {
	for _, c := range []struct {
		in      time.Duration
		msec    time.Duration
		partial bool
	}{
		{1, 1, false},
		{time.Millisecond, 1, false},
		{time.Millisecond + 1, 2, false},
		{time.Duration(1<<31-1) * time.Millisecond, 1<<31 - 1, false},
		{time.Duration(1<<31-1)*time.Millisecond + 1, 1<<31 - 1, true},
		{math.MaxInt64 - 1, 1<<31 - 1, true},
		{math.MaxInt64, 1<<31 - 1, true},
	} {
		msec, partial := waitMsec(c.in)
		require.Equal(t, c.msec, msec, "waitMsec(%d)", int64(c.in))
		require.Equal(t, c.partial, partial, "waitMsec(%d)", int64(c.in))
	}
}

// TestFallbackWaitLongerThanOneCall: a timeout beyond what one epoll_pwait
// can express is waited out in full, in several calls, instead of ending
// after the first with nothing ready. The longest single call is lowered so
// that the test takes milliseconds, not 25 days.
func TestFallbackWaitLongerThanOneCall(t *testing.T) {
	noPwait2.Store(true)
	maxWaitMsec = 5
	defer func() { noPwait2.Store(false); maxWaitMsec = 1<<31 - 1 }()
	p, err := New()
	require.NoError(t, err)
	defer p.Close()
	const timeout = 40 * time.Millisecond
	start := time.Now()
	n, err := p.Wait(make([]Event, 1), timeout)
	require.NoError(t, err)
	require.Zero(t, n)
	require.GreaterOrEqual(t, time.Since(start), timeout, "the wait ended after one call's worth")
}

// TestWaitHugeTimeout: a timeout of math.MaxInt64 waits until the event, on
// both the nanosecond and the millisecond path.
func TestWaitHugeTimeout(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		noPwait2.Store(fallback)
		p, err := New()
		require.NoError(t, err)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, p.Add(fds[0], Readable, 7))
		go func() {
			time.Sleep(20 * time.Millisecond)
			unix.Write(fds[1], []byte("x"))
		}()
		evs := make([]Event, 1)
		n, err := p.Wait(evs, math.MaxInt64)
		require.NoError(t, err, "fallback %v", fallback)
		require.Equal(t, 1, n, "fallback %v", fallback)
		require.Equal(t, uint64(7), evs[0].Token)
		unix.Close(fds[0])
		unix.Close(fds[1])
		require.NoError(t, p.Close())
	}
	noPwait2.Store(false)
}

// TestCloseDuringWait: Close while another goroutine is blocked in Wait. The
// kernel keeps waiting on the epoll instance; the waiter must not retry,
// after a signal interrupts it, on a number that Close released and an open
// may have reused. So the number stays open until the waiter leaves, and
// the interrupted Wait reports os.ErrClosed.
func TestCloseDuringWait(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGUSR1)
	defer signal.Stop(sigs)

	p, err := New()
	require.NoError(t, err)
	epfd := p.Fd()
	tid := make(chan int)
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid <- unix.Gettid()
		_, err := p.Wait(make([]Event, 1), -1)
		done <- err
	}()
	thread := <-tid
	waitInSyscall(t, thread, unix.SYS_EPOLL_PWAIT)

	require.NoError(t, p.Close())
	require.Equal(t, -1, p.Fd())
	require.Equal(t, "anon_inode:[eventpoll]", fdTarget(epfd), "the waiter's number stays its epoll instance")

	// Interrupt the wait; the retry sees the Close.
	deadline := time.Now().Add(10 * time.Second)
	var werr error
	for werr == nil {
		require.NoError(t, unix.Tgkill(unix.Getpid(), thread, unix.SIGUSR1))
		select {
		case werr = <-done:
		case <-time.After(20 * time.Millisecond):
			require.True(t, time.Now().Before(deadline), "Wait never returned after Close and a signal")
		}
	}
	require.ErrorIs(t, werr, os.ErrClosed)
	require.Equal(t, "poller: wait: file already closed", werr.Error())
	require.Empty(t, fdTarget(epfd), "the last call out closed the descriptor")
}

// waitInSyscall waits until thread is blocked in system call nr.
func waitInSyscall(t *testing.T, thread int, nr int) {
	t.Helper()
	path := "/proc/self/task/" + strconv.Itoa(thread) + "/syscall"
	want := strconv.Itoa(nr) + " "
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		if strings.HasPrefix(string(b), want) {
			return
		}
		require.True(t, time.Now().Before(deadline), "thread %d never entered syscall %d: %q", thread, nr, b)
		time.Sleep(time.Millisecond)
	}
}

// fdTarget is what /proc says descriptor fd is, or "" when it is not open.
func fdTarget(fd int) string {
	s, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	return s
}

// TestCloseRacingCtl: Add and Delete from several goroutines while another
// closes the poller. A call either runs on the open descriptor or reports
// os.ErrClosed; it never reaches the kernel with the closed number (EBADF,
// or worse, a number reused meanwhile), and the descriptor is closed once.
func TestCloseRacingCtl(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	for round := 0; round < 200; round++ {
		p, err := New()
		require.NoError(t, err)
		epfd := p.epfd
		errs := make(chan error, 4)
		var calls atomic.Int64
		for g := 0; g < 4; g++ {
			go func() {
				for {
					calls.Add(1)
					err := p.Add(fds[g%2], Readable, 1)
					if err == nil {
						err = p.Delete(fds[g%2])
					}
					switch {
					case err == nil, errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOENT):
						continue
					case errors.Is(err, os.ErrClosed):
						errs <- nil
					default:
						errs <- err
					}
					return
				}
			}()
		}
		// Close lands in the middle of a stream of calls.
		for calls.Load() < 400 {
			runtime.Gosched()
		}
		require.NoError(t, p.Close())
		for range 4 {
			require.NoError(t, <-errs)
		}
		if target := fdTarget(epfd); target == "anon_inode:[eventpoll]" {
			t.Fatalf("round %d: epoll descriptor %d still open after every call left", round, epfd)
		}
	}
}
