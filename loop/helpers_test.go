package loop_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// runGuard bounds every Run in the suite: a loop that should have ended but
// keeps running fails its test instead of hanging the suite. It is a guard
// against hangs, not a timing assertion.
const runGuard = 5 * time.Second

// run runs l in DEFAULT mode and requires that it returns nil on its own
// (no referenced work left, or Stop) before runGuard.
func run(t *testing.T, l *loop.Loop) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runGuard)
	defer cancel()
	err := l.Run(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run did not return within %v: something kept the loop alive", runGuard)
	}
	require.NoError(t, err)
}

// runErr runs l in DEFAULT mode and returns its error; a hang fails the test.
func runErr(t *testing.T, l *loop.Loop) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runGuard)
	defer cancel()
	err := l.Run(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run did not return within %v: something kept the loop alive", runGuard)
	}
	return err
}

// noWait runs one non-blocking iteration and requires no error.
func noWait(t *testing.T, l *loop.Loop) bool {
	t.Helper()
	alive, err := l.RunNoWait()
	require.NoError(t, err)
	return alive
}

// goid returns the id of the calling goroutine. Tests use it only to prove
// which goroutine ran a callback.
func goid() uint64 {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		panic("cannot parse goroutine id: " + err.Error())
	}
	return id
}

// eventFD opens a non-blocking eventfd that the test closes at cleanup.
func eventFD(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	require.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

// socketPair opens a non-blocking unix stream socket pair whose two numbers
// are closed at cleanup. A test that closes one of them early must put a
// descriptor of its own under that number (dup3) before the cleanup runs.
func socketPair(t *testing.T) [2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
	})
	return [2]int{fds[0], fds[1]}
}

var one = [8]byte{1}

// signal makes an eventfd readable.
func signal(t testing.TB, fd int) {
	if _, err := unix.Write(fd, one[:]); err != nil {
		t.Errorf("eventfd write: %v", err)
	}
}

// drain makes an eventfd unreadable again.
func drain(fd int) {
	var b [8]byte
	_, _ = unix.Read(fd, b[:])
}
