package dgram

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Defaults. A slot of the receive buffer holds the largest UDP payload, so
// nothing is truncated unless WithMaxPacket asks for smaller slots; the
// batch is libuv's order (it reads up to 20 messages a call, 32 per
// readiness event).
const (
	DefaultReadBatch = 32
	DefaultMaxPacket = 65535
	DefaultMaxQueued = 4 << 20
	maxReadBatch     = 1024 // the kernel's UIO_MAXIOV bound on vlen
)

// Option configures a Conn at Listen. A bad value is an error from Listen
// wrapping unix.EINVAL.
type Option func(*config) error

type config struct {
	reusePort bool
	batch     int
	maxPacket int
	maxQueued int
}

// WithReusePort sets SO_REUSEPORT, so that several sockets (one per loop of
// a group, say) bind one address and the kernel spreads datagrams over them.
func WithReusePort() Option {
	return func(c *config) error { c.reusePort = true; return nil }
}

// WithReadBatch sets how many datagrams one recvmmsg call may return
// (default DefaultReadBatch, at most 1024), and how many one sendmmsg call
// flushes from the send queue. The receive buffer is n slots of the
// maximum packet size.
func WithReadBatch(n int) Option {
	return func(c *config) error {
		if n < 1 || n > maxReadBatch {
			return fmt.Errorf("read batch %d not in [1, %d]: %w", n, maxReadBatch, unix.EINVAL)
		}
		c.batch = n
		return nil
	}
}

// WithMaxPacket sets the largest datagram delivered (default
// DefaultMaxPacket bytes); longer ones are counted in Stats.Truncated and
// not delivered.
func WithMaxPacket(n int) Option {
	return func(c *config) error {
		if n < 1 || n > DefaultMaxPacket {
			return fmt.Errorf("max packet %d not in [1, %d]: %w", n, DefaultMaxPacket, unix.EINVAL)
		}
		c.maxPacket = n
		return nil
	}
}

// WithMaxQueued bounds the bytes WriteTo may hold in the send queue while
// the kernel's send buffer is full (default DefaultMaxQueued); past it
// WriteTo fails with an error wrapping unix.ENOBUFS and queues nothing.
func WithMaxQueued(bytes int) Option {
	return func(c *config) error {
		if bytes < 1 {
			return fmt.Errorf("max queued %d: %w", bytes, unix.EINVAL)
		}
		c.maxQueued = bytes
		return nil
	}
}
