package dgram_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
)

func TestExchangeIPv4(t *testing.T) {
	l := newLoop(t)
	var got []string
	var froms []netip.AddrPort
	server := listen(t, l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		got = append(got, string(data))
		froms = append(froms, from)
	})
	require.True(t, server.LocalAddr().Addr().Is4())
	require.NotZero(t, server.LocalAddr().Port())
	client := listen(t, l, "udp", "127.0.0.1:0", ignore)
	for _, m := range []string{"one", "", "three"} {
		require.NoError(t, client.WriteTo([]byte(m), server.LocalAddr()))
	}
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == 3 })
	assert.Equal(t, []string{"one", "", "three"}, got, "an empty datagram is a datagram")
	for _, f := range froms {
		assert.Equal(t, client.LocalAddr(), f)
	}
	assert.Equal(t, uint64(3), client.Stats().Sent)
	assert.Equal(t, uint64(3), server.Stats().Received)
	assert.Zero(t, client.Buffered())
}

// TestIPv6 covers udp6 on ::1, and a dual-stack "udp" socket talking to an
// IPv4 peer through IPv4-mapped addresses, as Go's net does.
func TestIPv6(t *testing.T) {
	l := newLoop(t)
	var got []netip.AddrPort
	server, err := dgram.Listen(l, "udp6", "[::1]:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		got = append(got, from)
	})
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EAFNOSUPPORT) {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	require.NoError(t, err)
	defer server.Close(nil)
	require.Equal(t, netip.IPv6Loopback(), server.LocalAddr().Addr())
	client := listen(t, l, "udp6", "[::1]:0", ignore)
	require.NoError(t, client.WriteTo([]byte("x"), server.LocalAddr()))
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == 1 })
	assert.Equal(t, client.LocalAddr(), got[0])

	// An IPv6-only socket cannot reach an IPv4 peer: the kernel says so.
	v4got := 0
	v4 := listen(t, l, "udp4", "127.0.0.1:0", func(*dgram.Conn, []byte, netip.AddrPort) { v4got++ })
	err = client.WriteTo([]byte("x"), v4.LocalAddr())
	require.ErrorIs(t, err, unix.ENETUNREACH)

	// A dual-stack socket sees the IPv4 peer IPv4-mapped, and a reply to
	// the plain IPv4 address goes out through the mapped form.
	var dualFrom []netip.AddrPort
	dual := listen(t, l, "udp", ":0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		dualFrom = append(dualFrom, from)
		require.NoError(t, c.WriteTo(data, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())))
	})
	port := dual.LocalAddr().Port()
	require.NoError(t, v4.WriteTo([]byte("ping"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)))
	runUntil(t, l, 5*time.Second, func() bool { return v4got == 1 })
	require.Len(t, dualFrom, 1)
	assert.True(t, dualFrom[0].Addr().Is4In6(), "got %v", dualFrom[0])
	assert.Equal(t, v4.LocalAddr(), netip.AddrPortFrom(dualFrom[0].Addr().Unmap(), dualFrom[0].Port()))
}

// On a host without IPv6 (socket(AF_INET6) fails with EAFNOSUPPORT), a
// "udp" socket for every address is an IPv4 one, as Go's net falls back
// there, and exchanges datagrams; one that asked for IPv6 gets the error.
func TestListenWithoutIPv6(t *testing.T) {
	undo := dgram.WithoutIPv6()
	defer undo()
	l := newLoop(t)
	var got []string
	server := listen(t, l, "udp", ":0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		got = append(got, string(data))
	})
	require.Equal(t, netip.IPv4Unspecified(), server.LocalAddr().Addr())
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	require.NoError(t, client.WriteTo([]byte("v4"), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), server.LocalAddr().Port())))
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == 1 })
	require.Equal(t, []string{"v4"}, got)
	for _, c := range []struct{ network, address string }{{"udp6", ":0"}, {"udp", "[::1]:0"}} {
		_, err := dgram.Listen(l, c.network, c.address, ignore)
		require.ErrorIs(t, err, unix.EAFNOSUPPORT, "%s %s", c.network, c.address)
	}
}
