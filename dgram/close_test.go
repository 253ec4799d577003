package dgram_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

// TestClose: the close callback runs later on the loop, never inside
// Close; the socket is released at once; later writes wrap os.ErrClosed;
// a second Close does nothing; Run returns once nothing else is open.
func TestClose(t *testing.T) {
	l := newLoop(t)
	c := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	fd := c.Fd()
	assert.True(t, c.IsActive())
	assert.True(t, c.HasRef())
	calls := 0
	c.Close(func() { calls++ })
	c.Close(func() { calls += 100 })
	assert.Zero(t, calls, "not inside Close")
	assert.True(t, c.IsClosing())
	assert.False(t, c.IsActive())
	assert.Equal(t, -1, c.Fd())
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	assert.ErrorIs(t, err, unix.EBADF, "the socket is closed by Close")
	err = c.WriteTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
	require.ErrorIs(t, err, os.ErrClosed)
	assert.Equal(t, "dgram: write to 127.0.0.1:9: file already closed", err.Error())
	require.NoError(t, l.Run(context.Background()))
	assert.Equal(t, 1, calls)
}

// TestCloseFromCallback: a Conn closed by its own packet callback gets no
// further datagrams from the batch being delivered.
func TestCloseFromCallback(t *testing.T) {
	l := newLoop(t)
	got := 0
	server := listen(t, l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, _ []byte, _ netip.AddrPort) {
		got++
		c.Close(nil)
	})
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	for range 10 {
		require.NoError(t, client.WriteTo([]byte("x"), server.LocalAddr()))
	}
	runUntil(t, l, 5*time.Second, func() bool { return got > 0 })
	client.Close(nil)
	require.NoError(t, l.Run(context.Background()))
	assert.Equal(t, 1, got)
}

// TestUnref: an unreferenced Conn does not keep Run going, and still
// receives while something else does.
func TestUnref(t *testing.T) {
	l := newLoop(t)
	got := 0
	server := listen(t, l, "udp4", "127.0.0.1:0", func(*dgram.Conn, []byte, netip.AddrPort) { got++ })
	server.Unref()
	assert.False(t, server.HasRef())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx), "returns at once: nothing referenced")

	client := listen(t, l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, _ []byte, _ netip.AddrPort) {})
	require.NoError(t, client.WriteTo([]byte("x"), server.LocalAddr()))
	runUntil(t, l, 5*time.Second, func() bool { return got == 1 })
	server.Ref()
	assert.True(t, server.HasRef())
}

// TestClosedByLoop: a Conn whose loop closes is ended as its own Close
// would end it: the socket is released (the leak check sees it) and
// writes wrap os.ErrClosed.
func TestClosedByLoop(t *testing.T) {
	before := leakcheckTake()
	l, err := loop.New()
	require.NoError(t, err)
	c, err := dgram.Listen(l, "udp4", "127.0.0.1:0", ignore)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.True(t, c.IsClosing())
	assert.Equal(t, -1, c.Fd())
	err = c.WriteTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:9"))
	assert.True(t, errors.Is(err, os.ErrClosed), "%v", err)
	c.Close(nil) // nothing left to do, and no panic
	before.Check(t)
}

// TestErrorQueue: with IP_RECVERR set by the user, ICMP errors for sent
// datagrams queue on the socket and epoll reports it in error until they
// are read: the Conn reads them (counting Errors), so the loop sleeps
// again instead of spinning.
func TestErrorQueue(t *testing.T) {
	l := newLoop(t)
	gone := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	closedPort := gone.LocalAddr()
	gone.Close(nil)
	c := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	require.NoError(t, unix.SetsockoptInt(c.Fd(), unix.IPPROTO_IP, unix.IP_RECVERR, 1))
	// ICMP errors are rate-limited machine-wide: ask again until one
	// comes back.
	var last time.Time
	runUntil(t, l, 10*time.Second, func() bool {
		if c.Stats().Errors > 0 {
			return true
		}
		if time.Since(last) > 50*time.Millisecond {
			require.NoError(t, c.WriteTo([]byte("anyone?"), closedPort))
			last = time.Now()
		}
		return false
	})

	before := l.Stats().Iterations
	idle := l.NewTimer(l.Stop)
	require.NoError(t, idle.Start(100*time.Millisecond, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx)) // until the timer stops it
	idle.Close(nil)
	assert.Less(t, l.Stats().Iterations-before, uint64(20), "the loop slept through the 100ms")
}

// TestChurn: Conns opened, used once and closed while others carry
// traffic on the same loop give back every descriptor (counted every 100
// rounds, and by newLoop's leak check).
func TestChurn(t *testing.T) {
	const rounds = 500
	l := newLoop(t)
	echo := listen(t, l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		require.NoError(t, c.WriteTo(data, from))
	})
	background := 0
	bg := listen(t, l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, _ netip.AddrPort) {
		background++
		require.NoError(t, c.WriteTo(data, echo.LocalAddr()))
	})
	require.NoError(t, bg.WriteTo([]byte("bg"), echo.LocalAddr()))
	fds := leakcheck.FDCount()
	for i := range rounds {
		replied := false
		c, err := dgram.Listen(l, "udp", "127.0.0.1:0", func(c *dgram.Conn, data []byte, _ netip.AddrPort) {
			replied = string(data) == "churn"
			c.Close(nil)
		}, dgram.WithReadBatch(1), dgram.WithMaxPacket(16))
		require.NoError(t, err)
		require.NoError(t, c.WriteTo([]byte("churn"), echo.LocalAddr()))
		runUntil(t, l, 5*time.Second, func() bool { return replied })
		if i%100 == 99 {
			require.Equal(t, fds, leakcheck.FDCount(), "descriptors after %d rounds", i+1)
		}
	}
	assert.Positive(t, background, "the background echo kept going")
}
