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
	cfg       config
	sas       []unix.Sockaddr
	onConnect func(c *Conn, err error)
	lastErr   error
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
	d := &dialState{l: l, op: op, network: network, cfg: cfg, sas: t.sas, onConnect: onConnect}
	if t.sas != nil {
		if err := l.Post(d.next); err != nil {
			return fmt.Errorf("stream: %s: %w", op, err)
		}
		return nil
	}
	var sas []unix.Sockaddr
	var rerr error
	_, err = l.QueueWork(func() {
		sas, rerr = resolve(context.Background(), network, t)
	}, func(err error) {
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
		return fmt.Errorf("stream: %s: %w", op, err)
	}
	return nil
}

// next starts connecting to the next address, or reports the last error.
func (d *dialState) next() {
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
		if _, err := newConn(d.l, fd, &d.cfg, sa, d); err != nil {
			d.lastErr = err
			continue
		}
		return // connected() or failed() goes on
	}
	err := d.lastErr
	if err == nil {
		err = fmt.Errorf("no address: %w", unix.EADDRNOTAVAIL)
	}
	d.report(nil, fmt.Errorf("stream: %s: %w", d.op, err))
}

func (d *dialState) report(c *Conn, err error) {
	if fn := d.onConnect; fn != nil {
		d.onConnect = nil
		fn(c, err)
	}
}

// connected runs when a connecting socket becomes writable: the connect
// finished, one way or the other.
func (c *Conn) connected() {
	d := c.dial
	if err := soError(c.fd); err != nil {
		d.lastErr = os.NewSyscallError("connect", err)
		c.dial = nil // abandoned quietly: the next address is tried now
		c.end(nil)
		d.next()
		return
	}
	c.dial = nil
	c.updateInterest()
	d.report(c, nil)
	if !c.closing {
		c.updateInterest()
	}
}

// failed runs when a connecting connection was closed before it connected
// (by the loop: Walk, Shutdown, Close).
func (d *dialState) failed() {
	d.sas = nil
	d.report(nil, fmt.Errorf("stream: %s: closed by its loop: %w", d.op, os.ErrClosed))
}
