package dgram_test

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newLoop makes a loop closed when the test ends, then checks that the
// test gave back every descriptor and goroutine it took.
func newLoop(t *testing.T) *loop.Loop {
	t.Helper()
	before := leakcheck.Take()
	l, err := loop.New()
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
		before.Check(t)
	})
	return l
}

// runUntil runs l on the test goroutine until cond holds, failing after
// timeout. A ticking timer makes sure cond is looked at even when nothing
// arrives.
func runUntil(t *testing.T, l *loop.Loop, timeout time.Duration, cond func() bool) {
	t.Helper()
	tick := l.NewTimer(func() {})
	require.NoError(t, tick.Start(5*time.Millisecond, 5*time.Millisecond))
	defer tick.Close(nil)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		_, err := l.RunOnce()
		require.NoError(t, err)
	}
}

// listen opens a Conn and closes it when the test ends.
func listen(t *testing.T, l *loop.Loop, network, address string, fn func(c *dgram.Conn, data []byte, from netip.AddrPort), opts ...dgram.Option) *dgram.Conn {
	t.Helper()
	c, err := dgram.Listen(l, network, address, fn, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(nil) })
	return c
}

func ignore(*dgram.Conn, []byte, netip.AddrPort) {}

func leakcheckTake() leakcheck.Snapshot { return leakcheck.Take() }
