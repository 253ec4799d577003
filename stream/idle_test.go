package stream_test

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/stream"
)

// An idle connection is closed with os.ErrDeadlineExceeded; a busy one,
// whose peer writes more often than the timeout, for much longer than it,
// is left alone.
func TestIdleTimeout(t *testing.T) {
	l := newLoop(t)
	const idle = 400 * time.Millisecond // generous: a loaded machine may stall the writer
	var idleCC, busyCC closes
	var busyReads int
	accepted := 0
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		accepted++
		if accepted == 2 {
			ln.Close(nil)
		}
		c.OnData(func(c *stream.Conn, d []byte) int {
			if d[0] == 'i' {
				return len(d) // the idle one says hello once
			}
			busyReads++
			if d[len(d)-1] == 'q' {
				c.Close(nil)
			}
			return len(d)
		})
		c.SetIdleTimeout(idle)
		c.OnClose(func(c *stream.Conn, err error) {
			// which one is told by what it sent first; see below
			if busyReads > 0 && busyCC.n == 0 && err == nil {
				busyCC.n++
				busyCC.err = err
				return
			}
			idleCC.n++
			idleCC.err = err
		})
	})
	require.NoError(t, err)
	idleConn := goDial(t, ln)
	defer idleConn.Close()
	_, err = idleConn.Write([]byte("i"))
	require.NoError(t, err)
	busyConn := goDial(t, ln)
	defer busyConn.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		end := time.Now().Add(4 * idle)
		for time.Now().Before(end) {
			if _, err := busyConn.Write([]byte("b")); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(idle / 20)
		}
		_, _ = busyConn.Write([]byte("q"))
	}()
	start := time.Now()
	run(t, l)
	<-done
	require.Equal(t, 1, idleCC.n)
	require.ErrorIs(t, idleCC.err, os.ErrDeadlineExceeded)
	require.Contains(t, idleCC.err.Error(), "stream: idle for 400ms")
	require.Equal(t, 1, busyCC.n, "the busy connection closed itself, not by the timeout")
	require.NoError(t, busyCC.err)
	require.GreaterOrEqual(t, time.Since(start), 4*idle, "the busy one outlived the timeout several times")
	_, err = idleConn.Read(make([]byte, 1))
	require.Error(t, err, "the idle one was closed")
	_ = net.ErrClosed
}

// WithIdleTimeout applies to accepted connections; SetIdleTimeout(0) turns
// it off again.
func TestIdleTimeoutOption(t *testing.T) {
	l := newLoop(t)
	var first, second closes
	n := 0
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		n++
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
		if n == 1 {
			first.watch(c)
			return
		}
		ln.Close(nil)
		second.watch(c)
		c.SetIdleTimeout(0)
		l.AfterFunc(150*time.Millisecond, func() { c.Close(nil) })
	}, stream.WithIdleTimeout(30*time.Millisecond))
	require.NoError(t, err)
	a := goDial(t, ln)
	defer a.Close()
	b := goDial(t, ln)
	defer b.Close()
	run(t, l)
	require.Equal(t, 1, first.n)
	require.ErrorIs(t, first.err, os.ErrDeadlineExceeded)
	require.Equal(t, 1, second.n)
	require.NoError(t, second.err)
}
