package loop_test

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

// TestMain fails the whole binary when the suite as a whole leaves
// descriptors or goroutines behind; newLoop checks the same per test so a
// leak is pinned on the test that caused it.
func TestMain(m *testing.M) { leakcheck.Main(m) }

// newLoop makes a loop that is closed when the test ends, and then checks
// that the test gave back every descriptor and goroutine it took from the
// moment the loop was made. Descriptors a test opens before calling newLoop
// are part of that baseline (their cleanups run after this one), so tests
// that watch descriptors open them first.
func newLoop(t *testing.T, opts ...loop.Option) *loop.Loop {
	t.Helper()
	before := leakcheck.Take()
	l, err := loop.New(opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
		before.Check(t)
	})
	return l
}
