package dgram_test

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/loop"
)

// TestBadInput: every misuse is a wrapped errno naming the package and
// the operation once, never a panic.
func TestBadInput(t *testing.T) {
	l := newLoop(t)
	listenCases := []struct {
		name, network, address string
		fn                     func(*dgram.Conn, []byte, netip.AddrPort)
		opts                   []dgram.Option
		want                   error
	}{
		{"nil callback", "udp", "127.0.0.1:0", nil, nil, unix.EINVAL},
		{"unknown network", "tcp", "127.0.0.1:0", ignore, nil, unix.EINVAL},
		{"no port", "udp", "127.0.0.1", ignore, nil, unix.EINVAL},
		{"bad port", "udp", "127.0.0.1:99999", ignore, nil, unix.EINVAL},
		{"host name", "udp", "example.com:0", ignore, nil, unix.EINVAL},
		{"v6 on udp4", "udp4", "[::1]:0", ignore, nil, unix.EAFNOSUPPORT},
		{"v4 on udp6", "udp6", "127.0.0.1:0", ignore, nil, unix.EAFNOSUPPORT},
		{"address not local", "udp4", "192.0.2.1:0", ignore, nil, unix.EADDRNOTAVAIL},
		{"negative batch", "udp", "127.0.0.1:0", ignore, []dgram.Option{dgram.WithReadBatch(-1)}, unix.EINVAL},
		{"huge batch", "udp", "127.0.0.1:0", ignore, []dgram.Option{dgram.WithReadBatch(1 << 20)}, unix.EINVAL},
		{"zero max packet", "udp", "127.0.0.1:0", ignore, []dgram.Option{dgram.WithMaxPacket(0)}, unix.EINVAL},
		{"huge max packet", "udp", "127.0.0.1:0", ignore, []dgram.Option{dgram.WithMaxPacket(1 << 20)}, unix.EINVAL},
		{"negative max queued", "udp", "127.0.0.1:0", ignore, []dgram.Option{dgram.WithMaxQueued(-5)}, unix.EINVAL},
		{"nil option", "udp", "127.0.0.1:0", ignore, []dgram.Option{nil}, unix.EINVAL},
	}
	for _, c := range listenCases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := dgram.Listen(l, c.network, c.address, c.fn, c.opts...)
			require.ErrorIs(t, err, c.want)
			assert.Nil(t, conn)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "dgram: listen "+c.network+" "+c.address+": "), msg)
			assert.Equal(t, 1, strings.Count(msg, "dgram:"), msg)
		})
	}
	_, err := dgram.Listen(nil, "udp", "127.0.0.1:0", ignore)
	require.ErrorIs(t, err, unix.EINVAL)
	closed, err := loop.New()
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	_, err = dgram.Listen(closed, "udp", "127.0.0.1:0", ignore)
	require.ErrorIs(t, err, os.ErrClosed)
	assert.Equal(t, "dgram: listen udp 127.0.0.1:0: loop closed: file already closed", err.Error())

	// The port is taken: EADDRINUSE, unless both ask for SO_REUSEPORT.
	first := listen(t, l, "udp4", "127.0.0.1:0", ignore, dgram.WithReusePort())
	_, err = dgram.Listen(l, "udp4", first.LocalAddr().String(), ignore)
	require.ErrorIs(t, err, unix.EADDRINUSE)
	second := listen(t, l, "udp4", first.LocalAddr().String(), ignore, dgram.WithReusePort())
	assert.Equal(t, first.LocalAddr(), second.LocalAddr())

	c := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	err = c.WriteTo([]byte("x"), netip.AddrPort{})
	require.ErrorIs(t, err, unix.EINVAL)
	assert.Equal(t, "dgram: write to invalid AddrPort: invalid argument", err.Error())
	err = c.WriteTo([]byte("x"), netip.MustParseAddrPort("[::1]:9"))
	require.ErrorIs(t, err, unix.EAFNOSUPPORT)
	err = c.WriteTo(make([]byte, 70000), netip.MustParseAddrPort("127.0.0.1:9"))
	require.ErrorIs(t, err, unix.EMSGSIZE)
	assert.Equal(t, "dgram: write to 127.0.0.1:9: message too long", err.Error())
	// A mapped IPv4 address on an IPv4 socket is the IPv4 address.
	require.NoError(t, c.WriteTo([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), c.LocalAddr().Port())))
}
