// Command gnet is the gnet v2 side of the network benchmarks, written as
// gnet's own examples are: -proto echo writes back what OnTraffic reads,
// -proto http answers pipelined plaintext requests (the shape of gnet's
// HTTP example, with the same request framing as ours, package httpwire),
// -proto resp runs the RESP example's parser and store (package kv) on
// gnet's inbound buffer. -loops sets gnet's event loops (multicore when
// above 1; gnet's default load balancing, round-robin).
package main

import (
	"context"
	"fmt"
	"net"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/eventpipe/eventpipe/bench/internal/httpwire"
	"github.com/eventpipe/eventpipe/bench/internal/peer"
	"github.com/eventpipe/eventpipe/examples/resp/kv"
)

type server struct {
	gnet.BuiltinEventEngine
	proto string
	addr  net.Addr
	store *kv.Store
	ready chan gnet.Engine
}

func (s *server) OnBoot(eng gnet.Engine) gnet.Action {
	peer.Ready(s.addr)
	s.ready <- eng
	return gnet.None
}

func (s *server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	switch s.proto {
	case "resp":
		c.SetContext(kv.NewSession(s.store))
	case "http":
		b := make([]byte, 0, 4096)
		c.SetContext(&b)
	}
	return nil, gnet.None
}

func (s *server) OnTraffic(c gnet.Conn) gnet.Action {
	switch s.proto {
	case "echo":
		buf, _ := c.Next(-1)
		c.Write(buf)
	case "http":
		out := c.Context().(*[]byte)
		buf, _ := c.Peek(-1)
		res, n, bad := httpwire.AppendResponses((*out)[:0], buf)
		*out = res[:0]
		if n > 0 {
			c.Discard(n) // never Discard(0): that drops everything
		}
		if len(res) > 0 {
			c.Write(res)
		}
		if bad {
			return gnet.Close
		}
	case "resp":
		sess := c.Context().(*kv.Session)
		buf, _ := c.Peek(-1)
		consumed := 0
		for {
			k, closeConn := sess.Feed(buf[consumed:])
			consumed += k
			if len(sess.Out) > 0 {
				c.Write(sess.Out)
				sess.Out = sess.Out[:0]
			}
			if closeConn {
				return gnet.Close
			}
			if k == 0 || consumed == len(buf) {
				break
			}
		}
		if consumed > 0 {
			c.Discard(consumed)
		}
	}
	return gnet.None
}

func main() {
	f := peer.Parse()
	if f.Proto != "echo" && f.Proto != "http" && f.Proto != "resp" {
		peer.Fail(fmt.Errorf("gnet: unknown -proto %q (resp, http or echo)", f.Proto))
	}
	// gnet does not say which port it bound: take a free one first.
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		peer.Fail(err)
	}
	addr := ln.Addr()
	ln.Close()
	s := &server{proto: f.Proto, addr: addr, store: kv.NewStore(), ready: make(chan gnet.Engine, 1)}
	ctx, cancel := peer.Context()
	defer cancel()
	go func() {
		eng := <-s.ready
		<-ctx.Done()
		eng.Stop(context.Background())
	}()
	err = gnet.Run(s, "tcp://"+addr.String(),
		gnet.WithMulticore(f.Loops > 1), gnet.WithNumEventLoop(f.Loops), gnet.WithLogLevel(logging.ErrorLevel))
	if err != nil {
		peer.Fail(err)
	}
}
