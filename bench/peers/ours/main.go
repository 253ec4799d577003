// Command ours is the eventpipe side of the echo and HTTP network
// benchmarks: a server on a group of loops (package stream's ListenGroup),
// echoing bytes (-proto echo) or answering HTTP/1.1 plaintext requests
// (-proto http). The RESP side is examples/resp itself.
package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventpipe/eventpipe/bench/internal/httpwire"
	"github.com/eventpipe/eventpipe/bench/internal/peer"
	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

func main() {
	f := peer.Parse()
	ctx, cancel := peer.Context()
	defer cancel()
	if err := serve(ctx, f); err != nil {
		peer.Fail(err)
	}
}

func serve(ctx context.Context, f peer.Flags) error {
	g, err := group.New(f.Loops)
	if err != nil {
		return err
	}
	defer g.Close()
	var onConn func(c *stream.Conn)
	switch f.Proto {
	case "echo":
		onConn = func(c *stream.Conn) { c.OnData(echo) }
	case "http":
		// One reply buffer per loop: a loop runs one callback at a time.
		out := make(map[*loop.Loop]*[]byte, g.Len())
		for i := range g.Len() {
			b := make([]byte, 0, 64<<10)
			out[g.Loop(i)] = &b
		}
		onConn = func(c *stream.Conn) {
			buf := out[c.Loop()]
			c.OnData(func(c *stream.Conn, data []byte) int {
				res, n, bad := httpwire.AppendResponses((*buf)[:0], data)
				*buf = res[:0]
				if len(res) > 0 {
					if _, err := c.Write(res); err != nil {
						return 0
					}
				}
				if bad {
					c.Close(nil)
					return len(data)
				}
				return n
			})
		}
	default:
		return fmt.Errorf("ours: unknown -proto %q (echo or http)", f.Proto)
	}
	gl, err := stream.ListenGroup(g, "tcp", f.Addr, onConn)
	if err != nil {
		return err
	}
	peer.Ready(gl.Addr())
	if err := g.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// echo writes back what arrived; a peer that does not read its echoes
// stops being read until they have gone out.
func echo(c *stream.Conn, data []byte) int {
	if _, err := c.Write(data); err != nil {
		return 0
	}
	if !c.Writable() {
		c.PauseRead()
		c.OnDrain(resume)
	}
	return len(data)
}

func resume(c *stream.Conn) {
	c.OnDrain(nil)
	c.ResumeRead()
}
