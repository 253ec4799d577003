package loop_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A Run, RunOnce or RunNoWait from inside a callback is refused with EBUSY
// and leaves the outer run intact: its context still ends it.
func TestReentrantRunIsRefused(t *testing.T) {
	l := newLoop(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs []error
	tm := l.NewTimer(func() {
		errs = append(errs, l.Run(context.Background()))
		_, err := l.RunOnce()
		errs = append(errs, err)
		_, err = l.RunNoWait()
		errs = append(errs, err)
		cancel()
	})
	require.NoError(t, tm.Start(time.Millisecond, time.Hour))
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled, "the outer run still follows its context")
	case <-time.After(runGuard):
		t.Fatal("the outer run lost its context")
	}
	require.Len(t, errs, 3)
	for _, err := range errs {
		require.ErrorIs(t, err, unix.EBUSY)
	}
}
