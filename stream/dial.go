package stream

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// dialState is a Dial in progress: the addresses left to try, in order.
type dialState struct {
	l         *loop.Loop
	op        string
	network   string
	cfg       *config // shared by the attempts' connections
	sas       []unix.Sockaddr
	onConnect func(c *Conn, err error)
	lastErr   error
	conn      *Conn       // the attempt in progress
	timer     *loop.Timer // WithDialTimeout
}

// Dial connects to address on network ("tcp", "tcp4", "tcp6" or "unix")
// without blocking, and calls onConnect on the loop, never inside Dial:
// with the connection, or with nil and the error (wrapping the errno, such
// as unix.ECONNREFUSED). A host name (or service name) is resolved off the
// loop, on its worker pool (QueueWork), and each address it resolves to is
// tried in turn until one connects. An empty host is the local system.
// Bad arguments are an error from Dial itself, wrapping unix.EINVAL.
func Dial(l *loop.Loop, network, address string, onConnect func(c *Conn, err error), opts ...Option) error {
	op := "dial " + network + " " + address
	if l == nil {
		return fmt.Errorf("stream: %s: nil loop: %w", op, unix.EINVAL)
	}
	if onConnect == nil {
		return fmt.Errorf("stream: %s: nil onConnect: %w", op, unix.EINVAL)
	}
	cfg, err := buildConfig(op, opts)
	if err != nil {
		return err
	}
	t, err := parseAddr(network, address, false)
	if err != nil {
		return fmt.Errorf("stream: %s: %w", op, err)
	}
	d := &dialState{l: l, op: op, network: network, cfg: &cfg, sas: t.sas, onConnect: onConnect}
	if cfg.dialTimeout > 0 {
		d.timer = l.NewTimer(d.timedOut)
		d.timer.Unref() // the attempt itself keeps the loop alive
		if err := d.timer.Start(cfg.dialTimeout, 0); err != nil {
			return fmt.Errorf("stream: %s: %w", op, err)
		}
	}
	if t.sas != nil {
		if err := l.Post(d.next); err != nil {
			d.stopTimer()
			return fmt.Errorf("stream: %s: %w", op, err)
		}
		return nil
	}
	var sas []unix.Sockaddr
	var rerr error
	_, err = l.QueueWork(func() {
		sas, rerr = resolve(context.Background(), network, t)
	}, func(err error) {
		if d.onConnect == nil {
			return // timed out meanwhile
		}
		if err == nil {
			err = rerr
		}
		if err != nil {
			d.report(nil, fmt.Errorf("stream: %s: %w", op, err))
			return
		}
		d.sas = sas
		d.next()
	})
	if err != nil {
		d.stopTimer()
		return fmt.Errorf("stream: %s: %w", op, err)
	}
	return nil
}

// errDialTimeout is what a Dial past WithDialTimeout gets.
var errDialTimeout = fmt.Errorf("%w (%w)", os.ErrDeadlineExceeded, unix.ETIMEDOUT)

// timedOut ends the Dial when WithDialTimeout passes first.
func (d *dialState) timedOut() {
	if d.onConnect == nil {
		return
	}
	if c := d.conn; c != nil {
		d.conn = nil
		c.x.dial = nil // abandoned quietly
		c.end(nil)
	}
	d.sas = nil
	d.report(nil, fmt.Errorf("stream: %s: after %v: %w", d.op, d.cfg.dialTimeout, errDialTimeout))
}

func (d *dialState) stopTimer() {
	if d.timer != nil {
		d.timer.Close(nil)
		d.timer = nil
	}
}

// next starts connecting to the next address, or reports the last error.
func (d *dialState) next() {
	if d.onConnect == nil {
		return // timed out before it started
	}
	for len(d.sas) > 0 {
		sa := d.sas[0]
		d.sas = d.sas[1:]
		fd, err := newSocket(familyOf(sa))
		if err != nil {
			d.lastErr = err
			continue
		}
		err = unix.Connect(fd, sa)
		if err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
			unix.Close(fd)
			d.lastErr = os.NewSyscallError("connect", err)
			continue
		}
		c, err := newConn(d.l, fd, d.cfg, peerOf(sa), d)
		if err != nil {
			d.lastErr = err
			continue
		}
		d.conn = c
		return // connected() or failed() goes on
	}
	err := d.lastErr
	if err == nil {
		err = fmt.Errorf("no address: %w", unix.EADDRNOTAVAIL)
	}
	d.report(nil, fmt.Errorf("stream: %s: %w", d.op, err))
}

func (d *dialState) report(c *Conn, err error) {
	d.stopTimer()
	if fn := d.onConnect; fn != nil {
		d.onConnect = nil
		fn(c, err)
	}
}

// connected runs when a connecting socket becomes writable: the connect
// finished, one way or the other.
func (c *Conn) connected() {
	x := c.x
	d := x.dial
	d.conn = nil
	if err := soError(int(c.fd)); err != nil {
		d.lastErr = os.NewSyscallError("connect", err)
		x.dial = nil // abandoned quietly: the next address is tried now
		c.end(nil)
		d.next()
		return
	}
	x.dial = nil
	if x.remoteName == "" && x.remoteZone == 0 {
		// Nobody has seen the connection yet, so the dial state was all
		// its rare part held: a connected connection starts without one.
		c.x = nil
	}
	c.updateInterest()
	d.report(c, nil)
	if !c.closing {
		c.updateInterest()
	}
}

// failed runs when a connecting connection was closed before it connected
// (by the loop: Walk, Shutdown, Close).
func (d *dialState) failed() {
	d.conn = nil
	d.sas = nil
	d.report(nil, fmt.Errorf("stream: %s: closed by its loop: %w", d.op, os.ErrClosed))
}
