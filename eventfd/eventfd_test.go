package eventfd_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newFD(t *testing.T, init uint, flags eventfd.Flags) *eventfd.FD {
	t.Helper()
	e, err := eventfd.New(init, flags)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func TestCounterMode(t *testing.T) {
	e := newFD(t, 3, eventfd.NonBlocking)
	require.NoError(t, e.Write(4))
	require.NoError(t, e.Write(5))
	v, err := e.Read()
	require.NoError(t, err)
	require.EqualValues(t, 12, v, "read returns the whole counter")
	_, err = e.Read()
	require.ErrorIs(t, err, unix.EAGAIN, "the read reset the counter")
}

func TestSemaphoreMode(t *testing.T) {
	e := newFD(t, 0, eventfd.Semaphore|eventfd.NonBlocking)
	require.NoError(t, e.Write(3))
	for i := 0; i < 3; i++ {
		v, err := e.Read()
		require.NoError(t, err)
		require.EqualValues(t, 1, v)
	}
	_, err := e.Read()
	require.ErrorIs(t, err, unix.EAGAIN)
}

func TestOverflowAndInvalid(t *testing.T) {
	e := newFD(t, 0, eventfd.NonBlocking)
	require.ErrorIs(t, e.Write(1<<64-1), unix.EINVAL)
	require.NoError(t, e.Write(1<<64-2), "the largest value the counter holds")
	err := e.Write(1)
	require.ErrorIs(t, err, unix.EAGAIN, "an add that would overflow")
	v, err := e.Read()
	require.NoError(t, err)
	require.EqualValues(t, uint64(1<<64-2), v)
}

func TestBadInput(t *testing.T) {
	_, err := eventfd.New(0, eventfd.Flags(0x4000_0000))
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = eventfd.New(1<<32, 0)
	require.ErrorIs(t, err, unix.EINVAL)
}

func TestUseAfterClose(t *testing.T) {
	e, err := eventfd.New(0, eventfd.NonBlocking)
	require.NoError(t, err)
	require.NoError(t, e.Close())
	require.ErrorIs(t, e.Close(), os.ErrClosed)
	require.ErrorIs(t, e.Write(1), os.ErrClosed)
	_, err = e.Read()
	require.ErrorIs(t, err, os.ErrClosed)
	require.Equal(t, -1, e.Fd())
}

func TestCloseOnExec(t *testing.T) {
	e := newFD(t, 0, 0)
	flags, err := unix.FcntlInt(uintptr(e.Fd()), unix.F_GETFD, 0)
	require.NoError(t, err)
	require.NotZero(t, flags&unix.FD_CLOEXEC)
}

// pollEvents asks epoll what the fd is ready for right now.
func pollEvents(t *testing.T, fd int) uint32 {
	t.Helper()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	require.NoError(t, err)
	defer unix.Close(ep)
	require.NoError(t, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd,
		&unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT}))
	evs := make([]unix.EpollEvent, 1)
	n, err := unix.EpollWait(ep, evs, 0)
	require.NoError(t, err)
	if n == 0 {
		return 0
	}
	return evs[0].Events
}

func TestReadiness(t *testing.T) {
	e := newFD(t, 0, eventfd.NonBlocking)
	require.Equal(t, uint32(unix.EPOLLOUT), pollEvents(t, e.Fd()), "zero counter: writable only")
	require.NoError(t, e.Write(1))
	require.Equal(t, uint32(unix.EPOLLIN|unix.EPOLLOUT), pollEvents(t, e.Fd()))
	_, err := e.Read()
	require.NoError(t, err)
	require.NoError(t, e.Write(1<<64-2))
	require.Equal(t, uint32(unix.EPOLLIN), pollEvents(t, e.Fd()), "full counter: an add of 1 does not fit")
}

func TestBlockingReadWaitsForWrite(t *testing.T) {
	e := newFD(t, 0, 0)
	got := make(chan uint64, 1)
	go func() {
		v, err := e.Read()
		if err != nil {
			v = 0
		}
		got <- v
	}()
	select {
	case v := <-got:
		t.Fatalf("read returned %d before any write", v)
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, e.Write(7))
	require.EqualValues(t, 7, <-got)
}

func TestErrorsWrapErrno(t *testing.T) {
	e := newFD(t, 0, eventfd.NonBlocking)
	_, err := e.Read()
	var se *os.SyscallError
	require.True(t, errors.As(err, &se), "got %T", err)
}

func TestReadWriteAllocateNothing(t *testing.T) {
	e := newFD(t, 0, eventfd.NonBlocking)
	allocs := testing.AllocsPerRun(1000, func() {
		if err := e.Write(1); err != nil {
			panic(err)
		}
		if _, err := e.Read(); err != nil {
			panic(err)
		}
		if _, err := e.Read(); !errors.Is(err, unix.EAGAIN) {
			panic(err)
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkWriteRead(b *testing.B) {
	e, err := eventfd.New(0, eventfd.NonBlocking)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Write(1)
		_, _ = e.Read()
	}
}
