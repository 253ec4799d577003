package reliability

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

// guard bounds every wait in the suite, so that a loop that should have
// returned, or a callback that should have run, fails its test instead of
// hanging the suite. It is a guard against hangs, never a timing assertion.
const guard = 10 * time.Second

// checkLeaks snapshots the process now and, when the test ends (after the
// cleanups registered later have run), fails it if descriptors, mappings or
// goroutines did not return to the snapshot.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := leakcheck.Take()
	t.Cleanup(func() { before.Check(t) })
}

// newLoop makes a loop that the test closes at cleanup.
func newLoop(t *testing.T, opts ...loop.Option) *loop.Loop {
	t.Helper()
	l, err := loop.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := closeLoop(t, l); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("loop Close: %v", err)
		}
	})
	return l
}

// closeLoop closes l, failing the test if Close panics or does not return
// within guard (a loop left inconsistent by an earlier failure).
func closeLoop(t testing.TB, l *loop.Loop) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var err error
		if v := catch(func() { err = l.Close() }); v != nil {
			err = fmt.Errorf("panic escaped loop Close: %v", v)
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		return fmt.Errorf("loop Close did not return within %v", guard)
	}
}

// run runs l in DEFAULT mode on the calling goroutine and returns what Run
// returned; a run that outlives guard fails the test.
func run(t *testing.T, l *loop.Loop) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var err error
	if v := catch(func() { err = l.Run(ctx) }); v != nil {
		t.Fatalf("panic escaped Run: %v", v)
	}
	if ctx.Err() != nil {
		// Also when Run returned something else: the guard's wakeup is
		// what got it going again.
		t.Fatalf("Run still running after %v (returned %v)", guard, err)
	}
	return err
}

// goRun runs l in DEFAULT mode on a new goroutine; the channel receives what
// Run returned.
func goRun(l *loop.Loop) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Run(context.Background()) }()
	return done
}

// recv waits for a value from ch, failing the test after guard.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: nothing after %v", what, guard)
		panic("unreachable")
	}
}

// socketPair opens a non-blocking unix stream socket pair; both ends are
// closed at cleanup unless the test closed them (and set them to -1).
func socketPair(t testing.TB) *[2]int {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	p := &[2]int{fds[0], fds[1]}
	t.Cleanup(func() {
		for _, fd := range p {
			if fd >= 0 {
				_ = unix.Close(fd)
			}
		}
	})
	return p
}

// catch runs fn and returns what it panicked with, or nil.
func catch(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}
