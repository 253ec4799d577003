package reliability

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

func noopConn(*stream.Conn)             {}
func noopConnect(*stream.Conn, error)   {}
func noopData(*stream.Conn, []byte) int { return 0 }
func listenTCP(l *loop.Loop, opts ...stream.Option) error {
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", noopConn, opts...)
	if err == nil {
		ln.Close(nil)
	}
	return err
}

// openConn adopts one end of a socket pair as a stream.Conn; the other end
// is returned and closed at cleanup.
func openConn(t *testing.T, l *loop.Loop) (*stream.Conn, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[1]) })
	c, err := stream.Open(l, fds[0])
	require.NoError(t, err)
	t.Cleanup(func() { c.Close(nil) })
	return c, fds[1]
}

func closedConn(t *testing.T, l *loop.Loop) *stream.Conn {
	c, _ := openConn(t, l)
	c.Close(nil)
	return c
}

// Bad input to package stream: every misuse gives an error that wraps the
// documented errno or sentinel, never a panic.
func TestBadInputStream(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	dir := t.TempDir()
	longPath := filepath.Join(dir, strings.Repeat("x", 200))
	runBadCases(t, []badCase{
		{"Listen nil loop", unix.EINVAL, func(t *testing.T) error { _, err := stream.Listen(nil, "tcp", ":0", noopConn); return err }},
		{"Listen nil onConn", unix.EINVAL, func(t *testing.T) error { _, err := stream.Listen(l, "tcp", ":0", nil); return err }},
		{"Listen unknown network", unix.EINVAL, func(t *testing.T) error { _, err := stream.Listen(l, "udp", ":0", noopConn); return err }},
		{"Listen address without port", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Listen(l, "tcp", "127.0.0.1", noopConn)
			return err
		}},
		{"Listen port out of range", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Listen(l, "tcp", "127.0.0.1:70000", noopConn)
			return err
		}},
		{"Listen tcp4 on an IPv6 address", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Listen(l, "tcp4", "[::1]:0", noopConn)
			return err
		}},
		{"Listen tcp6 on an IPv4 address", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Listen(l, "tcp6", "127.0.0.1:0", noopConn)
			return err
		}},
		{"Listen empty unix path", unix.EINVAL, func(t *testing.T) error { _, err := stream.Listen(l, "unix", "", noopConn); return err }},
		{"Listen unix path too long", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Listen(l, "unix", longPath, noopConn)
			return err
		}},
		{"Listen address in use", unix.EADDRINUSE, func(t *testing.T) error {
			ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", noopConn)
			require.NoError(t, err)
			defer ln.Close(nil)
			_, err = stream.Listen(l, "tcp", ln.Addr().String(), noopConn)
			require.ErrorContains(t, err, "stream: listen tcp "+ln.Addr().String()+": bind: address already in use")
			return err
		}},
		{"Listen on a closed loop", os.ErrClosed, func(t *testing.T) error {
			_, err := stream.Listen(closedLoop(t), "tcp", "127.0.0.1:0", noopConn)
			return err
		}},
		{"nil option", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, nil) }},
		{"WithBacklog(0)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithBacklog(0)) }},
		{"WithReadBuffer(-1)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithReadBuffer(-1)) }},
		{"WithMaxBuffered(0)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithMaxBuffered(0)) }},
		{"WithHighWater(-5)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithHighWater(-5)) }},
		{"WithMaxQueued(0)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithMaxQueued(0)) }},
		{"WithIdleTimeout(-1s)", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithIdleTimeout(-time.Second)) }},
		{"WithKeepAlive(0, 1s, 3)", unix.EINVAL, func(t *testing.T) error {
			return listenTCP(l, stream.WithKeepAlive(0, time.Second, 3))
		}},
		{"WithKeepAlive count 0", unix.EINVAL, func(t *testing.T) error {
			return listenTCP(l, stream.WithKeepAlive(time.Second, time.Second, 0))
		}},
		{"WithBalance unknown", unix.EINVAL, func(t *testing.T) error { return listenTCP(l, stream.WithBalance(stream.Balance(9))) }},
		{"good options", nil, func(t *testing.T) error {
			return listenTCP(l, stream.WithReusePort(), stream.WithBacklog(8), stream.WithNoDelay(false),
				stream.WithKeepAlive(time.Second, time.Second, 3), stream.WithReadBuffer(1), stream.WithMaxBuffered(1),
				stream.WithHighWater(1), stream.WithMaxQueued(1), stream.WithIdleTimeout(0), stream.WithBalance(stream.RoundRobin))
		}},

		{"Dial nil loop", unix.EINVAL, func(t *testing.T) error { return stream.Dial(nil, "tcp", "127.0.0.1:1", noopConnect) }},
		{"Dial nil onConnect", unix.EINVAL, func(t *testing.T) error { return stream.Dial(l, "tcp", "127.0.0.1:1", nil) }},
		{"Dial unknown network", unix.EINVAL, func(t *testing.T) error { return stream.Dial(l, "ip", "127.0.0.1:1", noopConnect) }},
		{"Dial garbage address", unix.EINVAL, func(t *testing.T) error { return stream.Dial(l, "tcp", "::::", noopConnect) }},
		{"Dial negative port", unix.EINVAL, func(t *testing.T) error { return stream.Dial(l, "tcp", "127.0.0.1:-1", noopConnect) }},
		{"Dial bad option", unix.EINVAL, func(t *testing.T) error {
			return stream.Dial(l, "tcp", "127.0.0.1:1", noopConnect, stream.WithMaxQueued(-1))
		}},
		{"Dial on a closed loop", os.ErrClosed, func(t *testing.T) error {
			return stream.Dial(closedLoop(t), "tcp", "127.0.0.1:1", noopConnect)
		}},

		{"Open nil loop", unix.EINVAL, func(t *testing.T) error { _, err := stream.Open(nil, 0); return err }},
		{"Open fd -1", unix.EBADF, func(t *testing.T) error { _, err := stream.Open(l, -1); return err }},
		{"Open closed fd", unix.EBADF, func(t *testing.T) error { _, err := stream.Open(l, closedFD(t)); return err }},
		{"Open a regular file", unix.ENOTSOCK, func(t *testing.T) error { _, err := stream.Open(l, regularFile(t)); return err }},
		{"Open a datagram socket", unix.EINVAL, func(t *testing.T) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer unix.Close(fd)
			_, err = stream.Open(l, fd)
			return err
		}},
		{"Open an unconnected socket", unix.ENOTCONN, func(t *testing.T) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer unix.Close(fd)
			_, err = stream.Open(l, fd)
			return err
		}},
		{"Open bad option", unix.EINVAL, func(t *testing.T) error {
			_, err := stream.Open(l, 0, stream.WithReadBuffer(0))
			return err
		}},

		{"Write after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedConn(t, l).Write([]byte("x")); return err }},
		{"Writev after Close", os.ErrClosed, func(t *testing.T) error {
			return closedConn(t, l).Writev([][]byte{[]byte("x")}, func(error) { t.Error("done ran") })
		}},
		{"AsyncWrite after Close", os.ErrClosed, func(t *testing.T) error {
			return closedConn(t, l).AsyncWrite([]byte("x"), func(error) { t.Error("done ran") })
		}},
		{"SetNoDelay after Close", os.ErrClosed, func(t *testing.T) error { return closedConn(t, l).SetNoDelay(true) }},
		{"SetKeepAlive after Close", os.ErrClosed, func(t *testing.T) error {
			return closedConn(t, l).SetKeepAlive(time.Second, time.Second, 1)
		}},
		{"SetKeepAlive bad values", unix.EINVAL, func(t *testing.T) error {
			c, _ := openConn(t, l)
			return c.SetKeepAlive(time.Second, -time.Second, 1)
		}},
		{"SetNoDelay on a unix socket", unix.EOPNOTSUPP, func(t *testing.T) error {
			c, _ := openConn(t, l)
			return c.SetNoDelay(true)
		}},
		{"Write past WithMaxQueued", unix.ENOBUFS, func(t *testing.T) error {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			defer unix.Close(fds[1])
			c, err := stream.Open(l, fds[0], stream.WithMaxQueued(10))
			require.NoError(t, err)
			defer c.Close(nil)
			_, err = c.Write(make([]byte, 11))
			return err
		}},
		{"Shutdown after Close: cb gets ErrClosed, later", os.ErrClosed, func(t *testing.T) error {
			var got error
			calls := 0
			closedConn(t, l).Shutdown(func(err error) { calls++; got = err })
			require.Zero(t, calls, "cb ran inside Shutdown")
			require.NoError(t, run(t, l))
			require.Equal(t, 1, calls)
			return got
		}},
		{"second Shutdown: ENOTCONN", unix.ENOTCONN, func(t *testing.T) error {
			c, _ := openConn(t, l)
			var errs []error
			c.Shutdown(func(err error) { errs = append(errs, err) })
			c.Shutdown(func(err error) { errs = append(errs, err); c.Close(nil) })
			require.NoError(t, run(t, l))
			require.Len(t, errs, 2)
			require.NoError(t, errs[0])
			return errs[1]
		}},
		{"OnData consuming more than it got", unix.EINVAL, func(t *testing.T) error {
			c, peer := openConn(t, l)
			var got error
			c.OnClose(func(_ *stream.Conn, err error) { got = err })
			c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) + 1 })
			_, err := unix.Write(peer, []byte("x"))
			require.NoError(t, err)
			require.NoError(t, run(t, l))
			return got
		}},
		{"OnData consuming a negative count", unix.EINVAL, func(t *testing.T) error {
			c, peer := openConn(t, l)
			var got error
			c.OnClose(func(_ *stream.Conn, err error) { got = err })
			c.OnData(func(*stream.Conn, []byte) int { return -1 })
			_, err := unix.Write(peer, []byte("x"))
			require.NoError(t, err)
			require.NoError(t, run(t, l))
			return got
		}},
		{"methods of a closed conn and listener do nothing harmful", nil, func(t *testing.T) error {
			c := closedConn(t, l)
			c.Close(nil)
			c.CloseReset(nil)
			c.OnData(noopData)
			c.PauseRead()
			c.ResumeRead()
			c.SetIdleTimeout(time.Second)
			require.False(t, c.IsActive())
			require.True(t, c.IsClosing())
			require.Equal(t, -1, c.Fd())
			require.Nil(t, c.LocalAddr())
			ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", noopConn)
			require.NoError(t, err)
			ln.Close(nil)
			ln.Close(nil)
			require.True(t, ln.IsClosing())
			_, ok := ln.Addr().(*net.TCPAddr)
			require.True(t, ok)
			return run(t, l)
		}},
	})
	require.NoError(t, run(t, l))
}
