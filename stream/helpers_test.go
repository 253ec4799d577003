package stream_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// guard bounds every wait, so a hang fails its test; never a timing
// assertion.
const guard = 30 * time.Second

// newLoop makes a loop closed at cleanup, then checks that the test gave
// back every descriptor and goroutine.
func newLoop(t *testing.T) *loop.Loop {
	t.Helper()
	before := leakcheck.Take()
	l, err := loop.New(loop.WithWorkers(2))
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("loop Close: %v", err)
		}
		before.Check(t)
	})
	return l
}

// run runs l until nothing keeps it alive, failing the test after guard.
func run(t *testing.T, l *loop.Loop) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	require.NoError(t, l.Run(ctx))
}

// closes counts a connection's OnClose calls.
type closes struct {
	n   int
	err error
}

func (cc *closes) watch(c *stream.Conn) {
	c.OnClose(func(_ *stream.Conn, err error) {
		cc.n++
		cc.err = err
	})
}

// echo makes c write back what it reads.
func echo(c *stream.Conn) {
	c.OnData(func(c *stream.Conn, data []byte) int {
		if _, err := c.Write(data); err != nil {
			return 0
		}
		return len(data)
	})
}

// addrs gives, per network, the address to listen on.
func listenAddrs(t *testing.T) map[string]string {
	return map[string]string{
		"tcp":  "127.0.0.1:0",
		"tcp4": "127.0.0.1:0",
		"tcp6": "[::1]:0",
		"unix": filepath.Join(t.TempDir(), "s"),
	}
}

// goDial dials ln's address with Go's net package.
func goDial(t *testing.T, ln *stream.Listener) net.Conn {
	t.Helper()
	a := ln.Addr()
	c, err := net.DialTimeout(a.Network(), a.String(), guard)
	require.NoError(t, err)
	return c
}
