package reliability

import (
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/loop"
)

// TestBadInputDgram: every misuse of the dgram API is a wrapped,
// documented error, never a panic.
func TestBadInputDgram(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	nop := func(*dgram.Conn, []byte, netip.AddrPort) {}
	listen := func(network, address string, fn func(*dgram.Conn, []byte, netip.AddrPort), opts ...dgram.Option) func(t *testing.T) error {
		return func(t *testing.T) error {
			c, err := dgram.Listen(l, network, address, fn, opts...)
			if c != nil {
				c.Close(nil)
			}
			return err
		}
	}
	open := func(t *testing.T) *dgram.Conn {
		c, err := dgram.Listen(l, "udp4", "127.0.0.1:0", nop)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close(nil) })
		return c
	}
	closed := func(t *testing.T) *dgram.Conn {
		c := open(t)
		c.Close(nil)
		return c
	}
	to := netip.MustParseAddrPort("127.0.0.1:9")
	runBadCases(t, []badCase{
		{"listen nil loop", unix.EINVAL, func(t *testing.T) error {
			_, err := dgram.Listen(nil, "udp", "127.0.0.1:0", nop)
			return err
		}},
		{"listen closed loop", os.ErrClosed, func(t *testing.T) error {
			_, err := dgram.Listen(closedLoop(t), "udp", "127.0.0.1:0", nop)
			return err
		}},
		{"listen nil callback", unix.EINVAL, listen("udp", "127.0.0.1:0", nil)},
		{"listen unknown network", unix.EINVAL, listen("ip4:udp", "127.0.0.1:0", nop)},
		{"listen empty network", unix.EINVAL, listen("", "127.0.0.1:0", nop)},
		{"listen no port", unix.EINVAL, listen("udp", "127.0.0.1", nop)},
		{"listen negative port", unix.EINVAL, listen("udp", "127.0.0.1:-1", nop)},
		{"listen port too big", unix.EINVAL, listen("udp", "127.0.0.1:65536", nop)},
		{"listen host name", unix.EINVAL, listen("udp", "no.such.host:0", nop)},
		{"listen garbage address", unix.EINVAL, listen("udp", "[[::1]:0", nop)},
		{"listen v6 on udp4", unix.EAFNOSUPPORT, listen("udp4", "[::1]:0", nop)},
		{"listen v4 on udp6", unix.EAFNOSUPPORT, listen("udp6", "127.0.0.1:0", nop)},
		{"listen foreign address", unix.EADDRNOTAVAIL, listen("udp4", "192.0.2.1:0", nop)},
		{"read batch 0", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, dgram.WithReadBatch(0))},
		{"read batch negative", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, dgram.WithReadBatch(-1))},
		{"max packet negative", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, dgram.WithMaxPacket(-1))},
		{"max packet too big", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, dgram.WithMaxPacket(1<<17))},
		{"max queued 0", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, dgram.WithMaxQueued(0))},
		{"nil option", unix.EINVAL, listen("udp", "127.0.0.1:0", nop, nil)},
		{"write invalid address", unix.EINVAL, func(t *testing.T) error {
			return open(t).WriteTo([]byte("x"), netip.AddrPort{})
		}},
		{"write v6 from udp4", unix.EAFNOSUPPORT, func(t *testing.T) error {
			return open(t).WriteTo([]byte("x"), netip.MustParseAddrPort("[::1]:9"))
		}},
		{"write too long", unix.EMSGSIZE, func(t *testing.T) error {
			return open(t).WriteTo(make([]byte, 1<<16), to)
		}},
		{"write nil buffer", nil, func(t *testing.T) error {
			return open(t).WriteTo(nil, to)
		}},
		{"write after close", os.ErrClosed, func(t *testing.T) error {
			return closed(t).WriteTo([]byte("x"), to)
		}},
		{"close twice", nil, func(t *testing.T) error {
			closed(t).Close(nil)
			return nil
		}},
		{"handle methods after close", nil, func(t *testing.T) error {
			c := closed(t)
			c.Ref()
			c.Unref()
			_ = c.HasRef()
			_ = c.IsActive()
			_ = c.Stats()
			c.OnDrain(nil)
			if c.Fd() != -1 || c.Buffered() != 0 {
				t.Errorf("after Close: fd %d, %d buffered", c.Fd(), c.Buffered())
			}
			return nil
		}},
		{"conn of a closed loop", os.ErrClosed, func(t *testing.T) error {
			l2, err := loop.New()
			require.NoError(t, err)
			c, err := dgram.Listen(l2, "udp4", "127.0.0.1:0", nop)
			require.NoError(t, err)
			require.NoError(t, l2.Close())
			return c.WriteTo([]byte("x"), to)
		}},
	})
}
