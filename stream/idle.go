package stream

import (
	"fmt"
	"os"
	"time"
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

// SetIdleTimeout closes the connection, with an error wrapping
// os.ErrDeadlineExceeded, once it has made no read or write progress for
// d; d <= 0 turns the timeout off. Setting it counts as progress.
func (c *Conn) SetIdleTimeout(d time.Duration) {
	if c.closing {
		return
	}
	if d <= 0 {
		c.idle = 0
		if c.idleT != nil {
			c.idleT.Stop()
		}
		return
	}
	c.idle = d
	if c.idleT == nil {
		c.idleT = c.l.NewTimer(c.idleFire)
		c.idleT.Unref()
		c.idleT.SetCloseHook(c.timerClosed)
	}
	c.lastActive = c.l.Now()
	if err := c.idleT.Start(d, 0); err != nil {
		c.end(fmt.Errorf("stream: set idle timeout: %w", err))
	}
}

// touch records progress for the idle timeout.
func (c *Conn) touch() {
	if c.idle > 0 {
		c.lastActive = c.l.Now()
	}
}

func (c *Conn) idleFire() {
	if c.closing || c.idle <= 0 {
		return
	}
	since := c.l.Now().Sub(c.lastActive)
	if since >= c.idle {
		c.end(fmt.Errorf("stream: idle for %v: %w", c.idle, os.ErrDeadlineExceeded))
		return
	}
	if err := c.idleT.Start(c.idle-since, 0); err != nil {
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
