package stream

import (
	"fmt"
	"os"
	"time"

	"github.com/eventpipe/eventpipe/loop"
)

// Idle timeouts cost no timer re-arm per read or write. Progress (a read
// that returned bytes, a send the kernel took bytes from) only stores the
// loop's cached time in the connection. One timer per connection, armed
// for the full timeout, checks that time when it fires: if the connection
// was idle for the whole timeout it closes it, otherwise it re-arms itself
// for the time left since the last progress. A busy connection therefore
// re-arms its timer once per timeout period, not once per read.
//
// The timer is unreferenced: it never keeps the loop alive by itself.

// idleState is a connection's idle timeout, made by its first
// SetIdleTimeout.
type idleState struct {
	d          time.Duration // 0: off
	t          *loop.Timer
	lastActive time.Time
}

// SetIdleTimeout closes the connection, with an error wrapping
// os.ErrDeadlineExceeded, once it has made no read or write progress for
// d; d <= 0 turns the timeout off. Setting it counts as progress.
func (c *Conn) SetIdleTimeout(d time.Duration) {
	if c.closing {
		return
	}
	s := c.idle
	if d <= 0 {
		if s != nil {
			s.d = 0
			s.t.Stop()
		}
		return
	}
	if s == nil {
		s = &idleState{t: c.ls.l.NewTimer(c.idleFire)}
		s.t.Unref()
		s.t.SetCloseHook(c.timerClosed)
		c.idle = s
	}
	s.d = d
	s.lastActive = c.ls.l.Now()
	if err := s.t.Start(d, 0); err != nil {
		c.end(fmt.Errorf("stream: set idle timeout: %w", err))
	}
}

// touch records progress for the idle timeout.
func (c *Conn) touch() {
	if s := c.idle; s != nil && s.d > 0 {
		s.lastActive = c.ls.l.Now()
	}
}

func (c *Conn) idleFire() {
	s := c.idle
	if c.closing || s.d <= 0 {
		return
	}
	since := c.ls.l.Now().Sub(s.lastActive)
	if since >= s.d {
		c.end(fmt.Errorf("stream: idle for %v: %w", s.d, os.ErrDeadlineExceeded))
		return
	}
	if err := s.t.Start(s.d-since, 0); err != nil {
		c.end(fmt.Errorf("stream: idle timer: %w", err))
	}
}

// timerClosed is the idle timer's close hook: a timer closed by the loop
// (Walk, Shutdown, Close) ends the connection.
func (c *Conn) timerClosed() {
	if !c.closing {
		c.end(fmt.Errorf("stream: connection closed by its loop: %w", os.ErrClosed))
	}
}
