// Command echo is a TCP echo server on one loop, built with package
// stream: it closes connections idle for longer than -idle, and applies
// backpressure to peers that send faster than they read (when a
// connection's write queue passes its high-water mark it stops reading
// from that peer until the queue drains). When it ends (interrupt, or
// -for elapsed) it prints what it served.
//
//	go run ./examples/echo -addr 127.0.0.1:7000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"time"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "address to listen on")
	idle := flag.Duration("idle", 30*time.Second, "close connections idle this long")
	runFor := flag.Duration("for", 0, "stop after this long (0: until interrupted)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	st, err := serve(ctx, *addr, *idle, func(a net.Addr) { fmt.Println("echo: listening on", a) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	fmt.Print(st)
}

// served is what the server did.
type served struct {
	Accepted, Shed       uint64
	Closed, Idle, Errors int // connections closed: in all, by the idle timeout, by an error
	Bytes                int64
	Pauses               int // times a connection's reading was paused for backpressure
}

func (s served) String() string {
	return fmt.Sprintf("connections: %d accepted, %d shed\nclosed: %d (%d idle, %d errors)\nbytes echoed: %d\nbackpressure pauses: %d\n",
		s.Accepted, s.Shed, s.Closed, s.Idle, s.Errors, s.Bytes, s.Pauses)
}

// highWater is the queued output above which a connection stops reading.
const highWater = 256 << 10

// serve runs the echo server on addr until ctx ends; ready gets the bound
// address once it listens.
func serve(ctx context.Context, addr string, idle time.Duration, ready func(net.Addr)) (served, error) {
	var st served
	l, err := loop.New()
	if err != nil {
		return st, err
	}
	defer l.Close()

	ln, err := stream.Listen(l, "tcp", addr, func(c *stream.Conn) {
		c.OnData(func(c *stream.Conn, data []byte) int {
			if _, err := c.Write(data); err != nil {
				return 0 // the connection is closing; OnClose says why
			}
			st.Bytes += int64(len(data))
			if !c.Writable() {
				// The peer reads slower than it sends: stop reading
				// until what is queued has gone out.
				st.Pauses++
				c.PauseRead()
			}
			return len(data)
		})
		c.OnDrain(func(c *stream.Conn) { c.ResumeRead() })
		c.OnClose(func(_ *stream.Conn, err error) {
			st.Closed++
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				st.Idle++
			case err != nil && err != io.EOF && !errors.Is(err, os.ErrClosed):
				st.Errors++
			}
		})
	}, stream.WithIdleTimeout(idle), stream.WithHighWater(highWater))
	if err != nil {
		return st, err
	}
	ready(ln.Addr())
	err = l.Run(ctx)
	s := ln.Stats()
	st.Accepted, st.Shed = s.Accepted, s.Shed
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	// Close ends the listener and every connection still open (their
	// OnClose runs, with os.ErrClosed).
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	return st, err
}
