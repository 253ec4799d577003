// Command resp is a small Redis-protocol (RESP2) server on a group of
// loops, built with packages group and stream: PING, ECHO, SET, GET, DEL
// and INCR (plus QUIT, and the CONFIG GET that redis-benchmark asks
// first), enough for redis-cli and redis-benchmark, pipelining included.
//
//	go run ./examples/resp -addr 127.0.0.1:6380 -loops 2
//	redis-cli -p 6380 set k v
//	redis-benchmark -p 6380 -t ping,set,get -P 16 -q
//
// The keys live in one map shared by every loop (package kv: 64 shards,
// each with its own lock), so a key set on one connection is seen on every
// other, whichever loop serves it, as with Redis. (A map per loop would
// need no lock, but a client would then see the keys of its own loop only.)
//
// Each connection's input is parsed with OnData's unconsumed-input rule:
// a request cut anywhere is left unconsumed, and comes back with the next
// arrival appended, so the parser never copies. Replies for all the whole
// requests of one arrival (a pipeline) are gathered in the loop's scratch
// buffer and sent with one Write. PING, GET and SET allocate nothing per
// request. A request that cannot be parsed is answered with a RESP error
// and the connection closed, as Redis does; a peer that reads slower than
// it sends stops being read until its replies have gone out.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"

	"github.com/eventpipe/eventpipe/examples/resp/kv"
	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6380", "address to listen on")
	loops := flag.Int("loops", 1, "loops (one OS thread each); 0: one per CPU")
	balance := flag.String("balance", "reuseport", "how connections are spread over loops: reuseport, roundrobin or leastconn")
	flag.Parse()
	b, err := parseBalance(*balance)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = serve(ctx, *addr, *loops, b, func(a net.Addr) { fmt.Println("resp: listening on", a) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		os.Exit(1)
	}
}

func parseBalance(s string) (stream.Balance, error) {
	switch strings.ToLower(s) {
	case "reuseport":
		return stream.ReusePort, nil
	case "roundrobin":
		return stream.RoundRobin, nil
	case "leastconn", "leastconnections":
		return stream.LeastConnections, nil
	}
	return 0, fmt.Errorf("unknown balance %q (want reuseport, roundrobin or leastconn)", s)
}

// serve runs the server on addr until ctx ends; ready gets the bound
// address once it listens.
func serve(ctx context.Context, addr string, loops int, b stream.Balance, ready func(net.Addr)) error {
	g, err := group.New(loops)
	if err != nil {
		return err
	}
	defer g.Close() // closes every connection still open
	store := kv.NewStore()
	// One session (parser scratch, reply buffer) per loop: a loop runs one
	// callback at a time, so its connections can share one.
	sessions := make(map[*loop.Loop]*kv.Session, g.Len())
	for i := range g.Len() {
		sessions[g.Loop(i)] = kv.NewSession(store)
	}
	gl, err := stream.ListenGroup(g, "tcp", addr, func(c *stream.Conn) {
		s := sessions[c.Loop()]
		c.OnData(func(c *stream.Conn, data []byte) int { return onData(c, s, data) })
	}, stream.WithBalance(b))
	if err != nil {
		return err
	}
	ready(gl.Addr())
	err = g.Run(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil // asked to end
	}
	return err
}

// onData answers every whole request in data and leaves the rest.
func onData(c *stream.Conn, s *kv.Session, data []byte) int {
	consumed := 0
	for {
		n, closeConn := s.Feed(data[consumed:])
		consumed += n
		if len(s.Out) > 0 {
			_, err := c.Write(s.Out)
			s.Out = s.Out[:0]
			if err != nil {
				return 0 // the connection is closing; nothing more to do
			}
		}
		if closeConn {
			c.OnData(nil)
			c.Shutdown(closeAfterShutdown(c))
			return len(data)
		}
		if n == 0 || consumed == len(data) {
			break
		}
	}
	if !c.Writable() {
		// The peer sends faster than it reads its replies: stop reading
		// until they have gone out.
		c.PauseRead()
		c.OnDrain(resume)
	}
	return consumed
}

func resume(c *stream.Conn) {
	c.OnDrain(nil)
	c.ResumeRead()
}

func closeAfterShutdown(c *stream.Conn) func(error) {
	return func(error) { c.Close(nil) }
}
