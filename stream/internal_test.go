package stream

// Tests that need the package's internals: seams that refuse a Post or
// block the resolver, and the write queue's compaction.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// When the loop refuses AsyncWrite's Post for a reason other than being
// closed (a queue limit), the write goes by the loop's shared wakeup and is
// delivered all the same.
func TestAsyncWriteRefusedPost(t *testing.T) {
	refused := 0
	postFlush = func(*loop.Loop, func()) error {
		refused++
		return fmt.Errorf("loop: post: queue full: %w", unix.EAGAIN)
	}
	defer func() { postFlush = (*loop.Loop).Post }()
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	c, err := Open(l, fds[0])
	require.NoError(t, err)
	c.OnData(func(_ *Conn, d []byte) int { return len(d) })
	var doneErr error
	dones := 0
	go func() {
		if err := c.AsyncWrite([]byte("through the wakeup"), func(err error) {
			dones++
			doneErr = err
			c.Close(nil)
		}); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx))
	got, err := io.ReadAll(peer)
	require.NoError(t, err)
	require.Equal(t, "through the wakeup", string(got))
	require.Equal(t, 1, refused)
	require.Equal(t, 1, dones)
	require.NoError(t, doneErr)
}

// A write queue that never empties does not grow behind its head.
func TestQueueCompacts(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c, err := Open(l, fds[0])
	require.NoError(t, err)
	defer c.Close(nil)
	bufs := [][]byte{make([]byte, 10)}
	for range 10000 {
		// Queue a request, then let the "kernel" take one: the queue
		// stays non-empty throughout.
		x := c.more()
		x.q = append(x.q, wreq{bufs: bufs, size: 10})
		c.addQueued(10)
		if c.queuedLen() > 1 {
			c.advance(10)
		}
	}
	require.Equal(t, 1, c.queuedLen())
	require.Less(t, cap(c.x.q), 1024, "compacted")
	c.advance(10)
	require.Zero(t, c.Buffered())
}

// Dial resolves a host name off the loop: a resolver that blocks until a
// loop timer has fired would deadlock a loop that resolved on its own
// goroutine; here the timer fires and the dial completes.
func TestDialResolvesOffTheLoop(t *testing.T) {
	timerFired := make(chan struct{})
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		select {
		case <-timerFired:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("the loop did not run while resolving")
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	defer func() { lookupNetIP = net.DefaultResolver.LookupNetIP }()
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	var ln *Listener
	ln, err = Listen(l, "tcp4", "127.0.0.1:0", func(c *Conn) { ln.Close(nil); c.Close(nil) })
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	var dialErr error
	connected := false
	require.NoError(t, Dial(l, "tcp4", net.JoinHostPort("blocking.invalid", strconv.Itoa(port)), func(c *Conn, err error) {
		dialErr = err
		if c != nil {
			connected = true
			c.Close(nil)
		}
	}))
	l.AfterFunc(time.Millisecond, func() { close(timerFired) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx))
	require.NoError(t, dialErr)
	require.True(t, connected)
}

// On a host without IPv6 (socket(AF_INET6) fails with EAFNOSUPPORT), a
// "tcp" listener for every address ("" or "[::]") is an IPv4 one, as Go's
// net falls back there, and serves; a listener that asked for IPv6 gets
// the error.
func TestListenWithoutIPv6(t *testing.T) {
	socketSyscall = func(family, typ, proto int) (int, error) {
		if family == unix.AF_INET6 {
			return -1, unix.EAFNOSUPPORT
		}
		return unix.Socket(family, typ, proto)
	}
	defer func() { socketSyscall = unix.Socket }()
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	for _, address := range []string{":0", "[::]:0"} {
		served := false
		var ln *Listener
		ln, err = Listen(l, "tcp", address, func(c *Conn) {
			served = true
			c.Close(nil)
			ln.Close(nil)
		})
		require.NoError(t, err, address)
		addr := ln.Addr().(*net.TCPAddr)
		require.True(t, addr.IP.Equal(net.IPv4zero), "%s: listening on %v", address, addr)
		done := make(chan error, 1)
		go func() {
			c, err := net.Dial("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port)))
			if err == nil {
				_, err = io.ReadAll(c) // until the server closes it
				c.Close()
			}
			done <- err
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.NoError(t, l.Run(ctx))
		cancel()
		require.NoError(t, <-done)
		require.True(t, served, address)
	}
	for _, c := range []struct{ network, address string }{{"tcp6", ":0"}, {"tcp", "[::1]:0"}, {"tcp", "[::]:0"}} {
		if c.address == "[::]:0" {
			c.network = "tcp6" // v6only: no IPv4 stands in for it
		}
		_, err := Listen(l, c.network, c.address, func(*Conn) {})
		require.ErrorIs(t, err, unix.EAFNOSUPPORT, "%s %s", c.network, c.address)
	}
}
