package dgram

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// Stats are a Conn's counters since Listen. Read them on the loop goroutine.
type Stats struct {
	Received  uint64 // datagrams delivered to the packet callback
	Sent      uint64 // datagrams the kernel took, at once or from the queue
	Truncated uint64 // datagrams longer than the maximum packet, not delivered
	// Dropped is what the kernel dropped for lack of room in the receive
	// buffer (its SO_RXQ_OVFL counter). The kernel reports the counter on
	// the next datagram it queues, so drops show here once a later
	// datagram has been read.
	Dropped   uint64
	RecvCalls uint64 // recvmmsg calls that returned datagrams
	SendCalls uint64 // sendto and sendmmsg calls that sent
	// Errors counts receive errors and queued datagrams the kernel
	// refused when flushing (each is dropped: there is no one to tell).
	Errors uint64
}

// Conn is a UDP socket on a loop. It is a loop handle: use it from the loop
// goroutine only.
type Conn struct {
	l        *loop.Loop
	fd       int
	family   int
	local    netip.AddrPort
	w        *loop.Watcher
	onPacket func(c *Conn, data []byte, from netip.AddrPort)
	onDrain  func(c *Conn)
	closing  bool
	closeCb  func()

	// Receiving: one slot of maxPacket bytes per message of the batch.
	slot  int
	rbuf  []byte
	rmsgs []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6
	rctl  []byte
	drops dropAccount

	// Sending: the address of an immediate send, and the queue.
	wname unix.RawSockaddrInet6
	sendQueue

	stats Stats
}

// Listen opens a UDP socket bound to address ("host:port", the host an IP
// literal, empty for every address, or "localhost"; port 0 picks one) on
// network "udp", "udp4" or "udp6", and starts reading: onPacket runs on the
// loop for each datagram, with data pointing into the Conn's receive
// buffer, valid only during the call. An IPv6 socket delivers IPv4 peers
// as IPv4-mapped addresses, as the kernel gives them.
func Listen(l *loop.Loop, network, address string, onPacket func(c *Conn, data []byte, from netip.AddrPort), opts ...Option) (*Conn, error) {
	op := "dgram: listen " + network + " " + address
	if l == nil {
		return nil, fmt.Errorf("%s: nil loop: %w", op, unix.EINVAL)
	}
	if onPacket == nil {
		return nil, fmt.Errorf("%s: nil packet callback: %w", op, unix.EINVAL)
	}
	cfg := config{batch: DefaultReadBatch, maxPacket: DefaultMaxPacket, maxQueued: DefaultMaxQueued}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%s: option %d is nil: %w", op, i, unix.EINVAL)
		}
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	addr, family, v6only, err := resolve(network, address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	fd, family, err := openSocket(addr, family, v6only, network == "udp", cfg.reusePort)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c := &Conn{l: l, fd: fd, family: family, onPacket: onPacket}
	c.initRecv(cfg.batch, cfg.maxPacket)
	c.initSend(cfg.batch, cfg.maxQueued)
	c.local, err = localAddr(fd)
	if err == nil {
		c.w, err = l.Watch(fd, poller.Readable, c.ready)
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, os.ErrClosed) {
			err = fmt.Errorf("loop closed: %w", os.ErrClosed) // the loop's text would name the loop package
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c.w.SetCloseHook(c.partClosed)
	return c, nil
}

// openSocket makes the bound, non-blocking socket. A dual-stack "udp"
// socket for every address falls back to IPv4 where IPv6 is unavailable.
func openSocket(addr netip.AddrPort, family int, v6only, dual, reusePort bool) (int, int, error) {
	fd, err := socketSyscall(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err == unix.EAFNOSUPPORT && dual && family == unix.AF_INET6 && addr.Addr().IsUnspecified() {
		family, addr = unix.AF_INET, netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())
		fd, err = socketSyscall(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	}
	if err != nil {
		return -1, 0, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, int, error) {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("%s: %w", what, err)
	}
	if family == unix.AF_INET6 {
		on := 0
		if v6only {
			on = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on); err != nil {
			return fail("setsockopt IPV6_V6ONLY", err)
		}
	}
	if reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("setsockopt SO_REUSEPORT", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return fail("setsockopt SO_RXQ_OVFL", err)
	}
	var sa unix.RawSockaddrInet6
	n, err := putSockaddr(&sa, family, addr)
	if err == nil {
		err = bind(fd, &sa, n)
	}
	if err != nil {
		return fail("bind", err)
	}
	return fd, family, nil
}

func localAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("getsockname: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("getsockname: unexpected address %T: %w", sa, unix.EAFNOSUPPORT)
}

// ready serves the socket: reading first, then the queue when writable.
func (c *Conn) ready(ev poller.Events) {
	if ev&poller.Error != 0 {
		c.drainErrors()
	}
	if ev&(poller.Readable|poller.Hangup) != 0 && !c.closing {
		c.receive()
	}
	if ev&(poller.Writable|poller.Error) != 0 && !c.closing {
		c.flush()
	}
}

// LocalAddr is the bound address (with the port picked for port 0).
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Fd is the socket, for setsockopt (SO_RCVBUF, multicast, ...). It stays
// the Conn's: do not close it. -1 after Close.
func (c *Conn) Fd() int { return c.fd }

// Stats returns the counters.
func (c *Conn) Stats() Stats { return c.stats }

// OnDrain sets fn to run on the loop each time the send queue empties
// after WriteTo had to queue; nil removes it.
func (c *Conn) OnDrain(fn func(c *Conn)) { c.onDrain = fn }

// Close stops reading, drops what the send queue holds (as a datagram may
// be lost anywhere on its way) and closes the socket; cb (if not nil) runs
// on the loop's next close phase. Later WriteTo calls fail with an error
// wrapping os.ErrClosed; a second Close does nothing.
func (c *Conn) Close(cb func()) {
	if c.closing {
		return
	}
	if c.w.IsClosing() {
		// Closed from outside, its close hook not run yet: the
		// watcher's close phase is taken, so cb gets one of its own.
		c.release()
		if cb != nil {
			_ = c.l.Post(cb) // fails only on a closed loop: no phase left
		}
		return
	}
	c.closeCb = cb
	c.closing = true // so that the close hook, run by w.Close on a closed loop, leaves it to us
	c.w.Close(c.closed)
	c.release()
}

// partClosed ends the Conn when its watcher was closed from outside (a
// Walk, Shutdown or the loop's Close): as Close, but the close callback
// is the watcher's, which its closer chose.
func (c *Conn) partClosed() {
	if !c.closing {
		c.release()
	}
}

// release closes the descriptor once the watcher no longer watches it.
func (c *Conn) release() {
	if c.fd < 0 {
		return
	}
	c.closing = true
	c.dropQueue()
	unix.Close(c.fd)
	c.fd = -1
}

func (c *Conn) closed() {
	if cb := c.closeCb; cb != nil {
		c.closeCb = nil
		cb()
	}
}

// IsActive reports whether the Conn is open and reading.
func (c *Conn) IsActive() bool { return !c.closing && c.w.IsActive() }

// IsClosing reports whether the Conn was closed.
func (c *Conn) IsClosing() bool { return c.closing }

// Ref makes the Conn keep the loop alive again (the default).
func (c *Conn) Ref() { c.w.Ref() }

// Unref stops the Conn from keeping the loop alive; it still receives
// while the loop runs for other reasons.
func (c *Conn) Unref() { c.w.Unref() }

// HasRef reports whether the Conn keeps the loop alive.
func (c *Conn) HasRef() bool { return c.w.HasRef() }

func errClosed(op string) error { return fmt.Errorf("dgram: %s: %w", op, os.ErrClosed) }
