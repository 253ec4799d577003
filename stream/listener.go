package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// acceptBatch bounds the connections one readiness event accepts; the
// listener is level-triggered, so the rest come next iteration.
const acceptBatch = 128

// shedBatch bounds the connections one EMFILE episode accepts and closes.
const shedBatch = 1024

// emfileBackoff is how long a listener that ran out of descriptors and
// could not get its reserve back waits before accepting again, rather than
// spin on a backlog it cannot serve.
const emfileBackoff = 100 * time.Millisecond

// ListenerStats counts a listener's accepts.
type ListenerStats struct {
	Accepted uint64 // connections handed to onConn
	Shed     uint64 // connections accepted and closed at once for lack of descriptors
	Errors   uint64 // accepts that failed otherwise (ECONNABORTED is not counted), and accepted connections that could not be set up
}

// Listener accepts stream connections on a loop. It is used from the
// loop's goroutine only, except Stats.
type Listener struct {
	l       *loop.Loop
	fd      int
	w       *loop.Watcher
	backoff *loop.Timer
	addr    net.Addr
	onConn  func(c *Conn)
	cfg     config
	reserve int    // the emfile trick's spare descriptor, -1 if none
	unlink  string // the Unix socket path to remove at close

	accepted, shed, errors atomic.Uint64

	closing, finished bool
	closeCb           func()

	handoff func(fd int, peer peerAddr) // a group listener's acceptor: it serves the socket instead
}

// Listen opens a listening socket for network ("tcp", "tcp4", "tcp6" or
// "unix") on address and accepts connections on l, calling onConn on the
// loop with each; set its callbacks (OnData, ...) there. An empty host
// listens on every address (for "tcp", both IPv4 and IPv6); port 0 picks a
// free port (see Addr). A host name is resolved on the calling goroutine.
// opts also apply to every accepted connection. A Unix socket path is
// removed when the listener closes.
//
// When the process runs out of descriptors (EMFILE, ENFILE) the listener
// sheds load as libuv does: it closes a reserve descriptor it holds for
// the purpose, accepts and closes at once every pending connection
// (counted in ListenerStats.Shed), and takes the reserve back, so it never
// spins on a backlog it cannot serve, and serves again as soon as
// descriptors free up. ECONNABORTED is ignored.
func Listen(l *loop.Loop, network, address string, onConn func(c *Conn), opts ...Option) (*Listener, error) {
	op := "listen " + network + " " + address
	if l == nil {
		return nil, fmt.Errorf("stream: %s: nil loop: %w", op, unix.EINVAL)
	}
	if onConn == nil {
		return nil, fmt.Errorf("stream: %s: nil onConn: %w", op, unix.EINVAL)
	}
	cfg, err := buildConfig(op, opts)
	if err != nil {
		return nil, err
	}
	t, err := parseAddr(network, address, true)
	if err != nil {
		return nil, fmt.Errorf("stream: %s: %w", op, err)
	}
	if t.sas == nil {
		if t.sas, err = resolve(context.Background(), network, t); err != nil {
			return nil, fmt.Errorf("stream: %s: %w", op, err)
		}
		t.family = familyOf(t.sas[0])
	}
	ln := &Listener{l: l, onConn: onConn, cfg: cfg, reserve: -1, fd: -1}
	if err := ln.open(t); err != nil {
		ln.closeFds()
		return nil, fmt.Errorf("stream: %s: %w", op, err)
	}
	if network == "unix" && address[0] != '@' {
		ln.unlink = address
	}
	return ln, nil
}

func (ln *Listener) open(t *target) error {
	sa := t.sas[0]
	fd, err := newSocket(t.family)
	if errors.Is(err, unix.EAFNOSUPPORT) && dualWildcard(t, sa) {
		// A host without IPv6: every address is IPv4's, as Go's net
		// listens there.
		sa = &unix.SockaddrInet4{Port: sa.(*unix.SockaddrInet6).Port}
		t.family = unix.AF_INET
		fd, err = newSocket(t.family)
	}
	if err != nil {
		return err
	}
	ln.fd = fd
	if t.family != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if t.family == unix.AF_INET6 {
		v := 0
		if t.v6only {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, v); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if ln.cfg.reusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return os.NewSyscallError("bind", err)
	}
	if err := unix.Listen(fd, ln.cfg.backlog); err != nil {
		return os.NewSyscallError("listen", err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	ln.addr = toAddr(local)
	if ln.reserve, err = openReserve(); err != nil {
		return err
	}
	w, err := ln.l.Watch(fd, poller.Readable, ln.onReadable)
	if err != nil {
		return err
	}
	ln.w = w
	w.SetCloseHook(ln.watcherClosed)
	return nil
}

func (ln *Listener) closeFds() {
	if ln.fd >= 0 {
		unix.Close(ln.fd)
		ln.fd = -1
	}
	if ln.reserve >= 0 {
		unix.Close(ln.reserve)
		ln.reserve = -1
	}
}

// Addr returns the address the listener is bound to (with the port the
// kernel chose for port 0): a *net.TCPAddr or *net.UnixAddr.
func (ln *Listener) Addr() net.Addr { return ln.addr }

// Fd returns the listening descriptor, -1 once closing.
func (ln *Listener) Fd() int { return ln.fd }

// Stats returns the listener's counters; any goroutine may call it.
func (ln *Listener) Stats() ListenerStats {
	return ListenerStats{Accepted: ln.accepted.Load(), Shed: ln.shed.Load(), Errors: ln.errors.Load()}
}

func (ln *Listener) onReadable(poller.Events) {
	for range acceptBatch {
		if ln.closing {
			return
		}
		fd, peer, err := accept(ln.fd)
		switch err {
		case nil:
			ln.serve(fd, peer)
		case unix.EAGAIN:
			return
		case unix.ECONNABORTED:
		case unix.EMFILE, unix.ENFILE:
			ln.shedLoad()
			return
		default:
			ln.errors.Add(1)
			return
		}
	}
}

func (ln *Listener) serve(fd int, peer peerAddr) {
	if ln.handoff != nil {
		ln.handoff(fd, peer)
		return
	}
	c, err := newConn(ln.l, fd, &ln.cfg, peer, nil)
	if err != nil {
		ln.errors.Add(1)
		return
	}
	ln.accepted.Add(1)
	ln.onConn(c)
	c.updateInterest()
}

// shedLoad is libuv's uv__emfile_trick: give up the reserve descriptor,
// accept and close what is pending, take the reserve back.
func (ln *Listener) shedLoad() {
	if ln.reserve < 0 {
		if ln.reserve, _ = openReserve(); ln.reserve < 0 {
			ln.pause()
			return
		}
	}
	unix.Close(ln.reserve)
	ln.reserve = -1
	for range shedBatch {
		fd, _, err := accept(ln.fd)
		if err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			break
		}
		unix.Close(fd)
		ln.shed.Add(1)
	}
	ln.reserve, _ = openReserve()
	if ln.reserve < 0 {
		ln.pause()
	}
}

// pause stops accepting for emfileBackoff, when not even the reserve
// descriptor could be had.
func (ln *Listener) pause() {
	ln.errors.Add(1)
	if ln.backoff == nil {
		ln.backoff = ln.l.NewTimer(ln.unpause)
		ln.backoff.SetCloseHook(ln.timerClosed)
		if !ln.w.HasRef() {
			ln.backoff.Unref()
		}
	}
	ln.w.Stop()
	if err := ln.backoff.Start(emfileBackoff, 0); err != nil {
		ln.errors.Add(1)
	}
}

func (ln *Listener) unpause() {
	if ln.closing {
		return
	}
	if err := ln.w.Start(); err != nil {
		ln.errors.Add(1)
		ln.pause()
	}
}

// Close stops listening and closes the socket now (removing a Unix socket's
// path); cb (if not nil) runs on the loop's next close phase. Connections
// already accepted stay open. Closing a listener already closing does
// nothing.
func (ln *Listener) Close(cb func()) {
	if ln.closing {
		return
	}
	ln.closing = true
	ln.closeCb = cb
	if ln.backoff != nil {
		ln.backoff.Close(nil)
	}
	ln.w.Close(nil)
	ln.closeFds()
	if ln.unlink != "" {
		_ = unix.Unlink(ln.unlink)
	}
}

func (ln *Listener) watcherClosed() {
	ln.Close(nil)
	if ln.finished {
		return
	}
	ln.finished = true
	if cb := ln.closeCb; cb != nil {
		ln.closeCb = nil
		cb()
	}
}

func (ln *Listener) timerClosed() { ln.Close(nil) }

// IsActive reports whether the listener is accepting.
func (ln *Listener) IsActive() bool {
	return !ln.closing && (ln.w.IsActive() || (ln.backoff != nil && ln.backoff.IsActive()))
}

// IsClosing reports whether Close was called.
func (ln *Listener) IsClosing() bool { return ln.closing }

// Ref makes the listener keep the loop alive (the default).
func (ln *Listener) Ref() {
	ln.w.Ref()
	if ln.backoff != nil {
		ln.backoff.Ref()
	}
}

// Unref stops the listener from keeping the loop alive.
func (ln *Listener) Unref() {
	ln.w.Unref()
	if ln.backoff != nil {
		ln.backoff.Unref()
	}
}

// HasRef reports whether the listener is referenced.
func (ln *Listener) HasRef() bool { return ln.w.HasRef() }

// dualWildcard reports whether t listens on every address of both
// families ("tcp" with no host, or "[::]"), which an IPv4 socket for every
// address can stand in for where IPv6 is not available.
func dualWildcard(t *target, sa unix.Sockaddr) bool {
	sa6, ok := sa.(*unix.SockaddrInet6)
	return ok && !t.v6only && sa6.Addr == [16]byte{}
}
