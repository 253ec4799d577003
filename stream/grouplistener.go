package stream

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/loop"
)

// GroupListener accepts stream connections for a group of loops and spreads
// them over the loops as its Balance says. Addr, Close and Stats may be
// called from any goroutine.
type GroupListener struct {
	g       *group.Group
	balance Balance
	onConn  func(c *Conn)
	cfg     config
	addr    net.Addr

	// ReusePort: one listener per loop. RoundRobin, LeastConnections: one,
	// the acceptor, on loop 0.
	lns []*Listener
	// keep holds one referenced Async per loop (RoundRobin,
	// LeastConnections), so that a loop with no connection yet stays alive
	// to be handed one.
	keep []*loop.Async
	// live counts each loop's open connections handed out by the acceptor;
	// the acceptor adds, the connection's end (on its own loop) subtracts.
	live    []atomic.Int64
	release []func()
	next    uint64 // the acceptor's turn counter; acceptor loop only

	accepted, errors atomic.Uint64

	closed  atomic.Bool
	pending atomic.Int64 // loops whose part is not closed yet
	closeCb func()
}

// ListenGroup listens on address (network "tcp", "tcp4", "tcp6" or "unix",
// as for Listen) for every loop of g, and calls onConn with each accepted
// connection on the loop that owns it; set the connection's callbacks
// there. opts apply as for Listen, and WithBalance chooses how connections
// are spread:
//
//   - ReusePort (the default): each loop has a listener of its own on the
//     one address (SO_REUSEPORT; the kernel spreads connections by a hash
//     of their addresses). A Unix socket path cannot be shared: ReusePort
//     is EINVAL for "unix".
//   - RoundRobin: one listener on loop 0 accepts and hands the sockets to
//     the loops in turn (loop 0 included).
//   - LeastConnections: as RoundRobin, to the loop with the fewest of this
//     listener's connections open (ties go to the next loop in turn).
//
// While open, the group listener keeps every loop of g alive (a listener
// or a referenced handle on each). Call ListenGroup while no loop of g is
// running (before g.Run, or between runs), as Listen is called off a
// running loop; Addr, Close and Stats may then be called from any
// goroutine. Bad arguments (nil group, nil onConn, a bad option, an
// unknown balance) wrap unix.EINVAL.
func ListenGroup(g *group.Group, network, address string, onConn func(c *Conn), opts ...Option) (*GroupListener, error) {
	op := "listen group " + network + " " + address
	if g == nil {
		return nil, fmt.Errorf("stream: %s: nil group: %w", op, unix.EINVAL)
	}
	if onConn == nil {
		return nil, fmt.Errorf("stream: %s: nil onConn: %w", op, unix.EINVAL)
	}
	cfg, err := buildConfig(op, opts)
	if err != nil {
		return nil, err
	}
	if err := checkNetwork(network); err != nil {
		return nil, fmt.Errorf("stream: %s: %w", op, err)
	}
	gl := &GroupListener{g: g, balance: cfg.balance, onConn: onConn, cfg: cfg}
	if cfg.balance == ReusePort {
		err = gl.listenEach(network, address, opts)
	} else {
		err = gl.listenOne(network, address, opts)
	}
	if err != nil {
		gl.closeParts()
		return nil, fmt.Errorf("stream: %s: %w", op, err)
	}
	return gl, nil
}

// listenEach opens one SO_REUSEPORT listener per loop; the first fixes
// the port when address asked for port 0.
func (gl *GroupListener) listenEach(network, address string, opts []Option) error {
	if network == "unix" {
		return fmt.Errorf("ReusePort cannot share a Unix socket path (use RoundRobin or LeastConnections): %w", unix.EINVAL)
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("address: %w", unix.EINVAL)
	}
	opts = append(opts[:len(opts):len(opts)], WithReusePort())
	for i := range gl.g.Len() {
		ln, err := Listen(gl.g.Loop(i), network, address, gl.onConn, opts...)
		if err != nil {
			return unwrapListen(err)
		}
		gl.lns = append(gl.lns, ln)
		if i == 0 {
			gl.addr = ln.Addr()
			port := gl.addr.(*net.TCPAddr).Port
			address = net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	return nil
}

// listenOne opens the acceptor on loop 0 and a keep-alive handle on every
// loop.
func (gl *GroupListener) listenOne(network, address string, opts []Option) error {
	n := gl.g.Len()
	gl.live = make([]atomic.Int64, n)
	gl.release = make([]func(), n)
	for i := range n {
		live := &gl.live[i]
		gl.release[i] = func() { live.Add(-1) }
		a, err := gl.g.Loop(i).NewAsync(func() {})
		if err != nil {
			return err
		}
		gl.keep = append(gl.keep, a)
	}
	ln, err := Listen(gl.g.Loop(0), network, address, gl.onConn, opts...)
	if err != nil {
		return unwrapListen(err)
	}
	ln.handoff = gl.handoff
	gl.lns = append(gl.lns, ln)
	gl.addr = ln.Addr()
	return nil
}

// unwrapListen drops Listen's own "stream: listen ...:" prefix, so that
// the group's error names the package and operation once.
func unwrapListen(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// closeParts closes what a failed ListenGroup had opened; no loop is
// running, so it may.
func (gl *GroupListener) closeParts() {
	for _, ln := range gl.lns {
		ln.Close(nil)
	}
	for _, a := range gl.keep {
		a.Close(nil)
	}
}

// handoff runs on the acceptor's loop with each accepted socket: it picks
// a loop and has that loop adopt the socket.
func (gl *GroupListener) handoff(fd int, peer peerAddr) {
	i := gl.pick()
	gl.live[i].Add(1)
	if i == 0 {
		gl.serve(0, fd, peer)
		return
	}
	if err := gl.g.Post(i, func() { gl.serve(i, fd, peer) }); err != nil {
		gl.live[i].Add(-1)
		gl.errors.Add(1)
		unix.Close(fd)
	}
}

// pick chooses the loop for the next connection.
func (gl *GroupListener) pick() int {
	n := len(gl.live)
	start := int(gl.next % uint64(n))
	gl.next++
	if gl.balance == RoundRobin {
		return start
	}
	best, min := start, gl.live[start].Load()
	for k := 1; k < n; k++ {
		i := (start + k) % n
		if v := gl.live[i].Load(); v < min {
			best, min = i, v
		}
	}
	return best
}

// serve adopts fd on loop i, its owner from then on.
func (gl *GroupListener) serve(i, fd int, peer peerAddr) {
	c, err := newConn(gl.g.Loop(i), fd, &gl.cfg, peer, nil)
	if err != nil {
		gl.live[i].Add(-1)
		gl.errors.Add(1)
		return
	}
	c.release = gl.release[i]
	gl.accepted.Add(1)
	gl.onConn(c)
	c.updateInterest()
}

// Addr returns the address the listeners are bound to (with the port the
// kernel chose for port 0). Any goroutine may call it.
func (gl *GroupListener) Addr() net.Addr { return gl.addr }

// Balance returns how the listener spreads connections.
func (gl *GroupListener) Balance() Balance { return gl.balance }

// Stats returns the counters of every loop's listener summed (accepted,
// shed, errors), with the acceptor's hand-offs counted as accepted once
// their loop has set the connection up. A socket the acceptor could not
// hand over (its loop closed, or its task queue full under
// loop.WithQueueLimit) is closed and counted in Errors. Any goroutine may
// call it.
func (gl *GroupListener) Stats() ListenerStats {
	var s ListenerStats
	for _, ln := range gl.lns {
		ls := ln.Stats()
		s.Accepted += ls.Accepted
		s.Shed += ls.Shed
		s.Errors += ls.Errors
	}
	s.Accepted += gl.accepted.Load()
	s.Errors += gl.errors.Load()
	return s
}

// Close stops listening on every loop: each loop closes its part (its
// listener, its keep-alive handle) on its own goroutine, and cb (if not
// nil) runs once every part is closed, on the loop that closed the last.
// Connections already accepted stay open (a socket the acceptor handed to
// a loop before Close is still served). Any goroutine may call it; a loop
// that is not running closes its part when it next runs or is closed. A
// second Close does nothing.
func (gl *GroupListener) Close(cb func()) {
	if !gl.closed.CompareAndSwap(false, true) {
		return
	}
	gl.closeCb = cb
	n := gl.g.Len()
	gl.pending.Store(int64(n))
	for i := range n {
		if err := gl.g.Post(i, func() { gl.closePart(i) }); err != nil {
			// A closed loop has closed its handles already.
			gl.partClosed()
		}
	}
}

// closePart closes loop i's part, on loop i.
func (gl *GroupListener) closePart(i int) {
	parts := 0
	done := func() {
		if parts--; parts == 0 {
			gl.partClosed()
		}
	}
	var ln *Listener
	if gl.balance == ReusePort {
		ln = gl.lns[i]
	} else if i == 0 {
		ln = gl.lns[0]
	}
	if ln != nil && !ln.IsClosing() {
		parts++
	}
	var a *loop.Async
	if gl.keep != nil && !gl.keep[i].IsClosing() {
		a = gl.keep[i]
		parts++
	}
	if parts == 0 {
		gl.partClosed() // closed from outside (the loop's Walk, Shutdown)
		return
	}
	if ln != nil && !ln.IsClosing() {
		ln.Close(done)
	}
	if a != nil {
		a.Close(done)
	}
}

func (gl *GroupListener) partClosed() {
	if gl.pending.Add(-1) == 0 && gl.closeCb != nil {
		gl.closeCb()
	}
}
