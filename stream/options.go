package stream

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults of the options.
const (
	DefaultReadBuffer  = 64 << 10 // bytes asked of the kernel per read, as libuv suggests
	DefaultMaxBuffered = 4 << 20  // unconsumed input kept before ENOBUFS
	DefaultHighWater   = 1 << 20  // queued output above which Writable is false
	DefaultMaxQueued   = 64 << 20 // queued output past which writes fail with ENOBUFS
)

// Option configures a listener (and every connection it accepts), a Dial or
// an Open. A bad value is an error wrapping unix.EINVAL from the call that
// takes the option.
type Option func(*config) error

// Balance says how a group listener spreads connections over its loops.
type Balance int

const (
	// ReusePort gives each loop a listener of its own on one port
	// (SO_REUSEPORT) and lets the kernel spread the connections.
	ReusePort Balance = iota
	// RoundRobin accepts on one loop and hands the sockets to the loops in
	// turn.
	RoundRobin
	// LeastConnections accepts on one loop and hands each socket to the
	// loop with the fewest open connections.
	LeastConnections
)

// String names the balance.
func (b Balance) String() string {
	switch b {
	case ReusePort:
		return "ReusePort"
	case RoundRobin:
		return "RoundRobin"
	case LeastConnections:
		return "LeastConnections"
	}
	return fmt.Sprintf("Balance(%d)", int(b))
}

type keepAlive struct {
	idle, interval time.Duration
	count          int
}

type config struct {
	reusePort   bool
	backlog     int
	noDelay     bool
	keepAlive   *keepAlive
	readBuffer  int
	maxBuffered int
	highWater   int
	maxQueued   int
	idle        time.Duration
	balance     Balance
}

func defaultConfig() config {
	return config{
		backlog:     unix.SOMAXCONN,
		noDelay:     true,
		readBuffer:  DefaultReadBuffer,
		maxBuffered: DefaultMaxBuffered,
		highWater:   DefaultHighWater,
		maxQueued:   DefaultMaxQueued,
	}
}

// buildConfig applies opts to the defaults; op names the calling operation
// in errors.
func buildConfig(op string, opts []Option) (config, error) {
	c := defaultConfig()
	for i, o := range opts {
		if o == nil {
			return c, fmt.Errorf("stream: %s: option %d is nil: %w", op, i, unix.EINVAL)
		}
		if err := o(&c); err != nil {
			return c, fmt.Errorf("stream: %s: %w", op, err)
		}
	}
	return c, nil
}

func positive(name string, n int) error {
	if n <= 0 {
		return fmt.Errorf("%s(%d): must be positive: %w", name, n, unix.EINVAL)
	}
	return nil
}

// WithReusePort sets SO_REUSEPORT on a listening socket, so that several
// listeners (one per loop) can share a port.
func WithReusePort() Option {
	return func(c *config) error { c.reusePort = true; return nil }
}

// WithBacklog sets the listen backlog (default SOMAXCONN; the kernel caps it
// at net.core.somaxconn).
func WithBacklog(n int) Option {
	return func(c *config) error {
		if err := positive("WithBacklog", n); err != nil {
			return err
		}
		c.backlog = n
		return nil
	}
}

// WithNoDelay sets TCP_NODELAY (default on for TCP, as in Go's net). It is
// ignored for Unix sockets.
func WithNoDelay(on bool) Option {
	return func(c *config) error { c.noDelay = on; return nil }
}

// WithKeepAlive turns TCP keepalive on (it is off by default): the first
// probe after idle, then one every interval, count probes before the
// connection is dropped. Durations are rounded up to whole seconds; each
// must be at least one second and count positive. It is ignored for Unix
// sockets.
func WithKeepAlive(idle, interval time.Duration, count int) Option {
	return func(c *config) error {
		if err := checkKeepAlive(idle, interval, count); err != nil {
			return err
		}
		c.keepAlive = &keepAlive{idle, interval, count}
		return nil
	}
}

func checkKeepAlive(idle, interval time.Duration, count int) error {
	if idle < time.Second || interval < time.Second || count <= 0 {
		return fmt.Errorf("keepalive(%v, %v, %d): need durations of at least 1s and a positive count: %w",
			idle, interval, count, unix.EINVAL)
	}
	return nil
}

// WithReadBuffer sets how many bytes one read asks of the kernel (default
// 64 KiB).
func WithReadBuffer(n int) Option {
	return func(c *config) error {
		if err := positive("WithReadBuffer", n); err != nil {
			return err
		}
		c.readBuffer = n
		return nil
	}
}

// WithMaxBuffered bounds the unconsumed input a connection keeps between
// OnData calls (default 4 MiB); past it the connection ends with an error
// wrapping unix.ENOBUFS.
func WithMaxBuffered(n int) Option {
	return func(c *config) error {
		if err := positive("WithMaxBuffered", n); err != nil {
			return err
		}
		c.maxBuffered = n
		return nil
	}
}

// WithHighWater sets the queued output above which Writable reports false
// (default 1 MiB).
func WithHighWater(n int) Option {
	return func(c *config) error {
		if err := positive("WithHighWater", n); err != nil {
			return err
		}
		c.highWater = n
		return nil
	}
}

// WithMaxQueued bounds the queued output (default 64 MiB): a write that
// would queue more fails with an error wrapping unix.ENOBUFS and queues
// nothing.
func WithMaxQueued(n int) Option {
	return func(c *config) error {
		if err := positive("WithMaxQueued", n); err != nil {
			return err
		}
		c.maxQueued = n
		return nil
	}
}

// WithIdleTimeout closes connections that make no read or write progress for
// d, as SetIdleTimeout does; 0 (the default) means never.
func WithIdleTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithIdleTimeout(%v): negative duration: %w", d, unix.EINVAL)
		}
		c.idle = d
		return nil
	}
}

// WithBalance chooses how a group listener spreads connections over its
// loops (default ReusePort). A single-loop Listen accepts and ignores it.
func WithBalance(b Balance) Option {
	return func(c *config) error {
		if b < ReusePort || b > LeastConnections {
			return fmt.Errorf("WithBalance(%v): unknown balance: %w", b, unix.EINVAL)
		}
		c.balance = b
		return nil
	}
}
