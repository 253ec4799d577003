// Command gonet is the Go net side of the network benchmarks: a goroutine
// per connection, as most Go servers are written. -proto resp runs the
// RESP example's parser and store (package kv), -proto echo echoes, and
// -proto http is net/http with the plaintext handler.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/eventpipe/eventpipe/bench/internal/httpwire"
	"github.com/eventpipe/eventpipe/bench/internal/peer"
	"github.com/eventpipe/eventpipe/examples/resp/kv"
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
	ln, err := net.Listen("tcp", f.Addr)
	if err != nil {
		return err
	}
	peer.Ready(ln.Addr())
	context.AfterFunc(ctx, func() { ln.Close() })
	if f.Proto == "http" {
		srv := &http.Server{Handler: http.HandlerFunc(plaintext)}
		context.AfterFunc(ctx, func() { srv.Close() })
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
	var handle func(net.Conn)
	switch f.Proto {
	case "echo":
		handle = echo
	case "resp":
		store := kv.NewStore()
		handle = func(c net.Conn) { resp(c, store) }
	default:
		return fmt.Errorf("gonet: unknown -proto %q (resp, http or echo)", f.Proto)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			handle(c)
		}()
	}
}

func plaintext(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Server"] = []string{"bench"}
	h["Content-Type"] = []string{"text/plain"}
	io.WriteString(w, httpwire.Body)
}

func echo(c net.Conn) {
	buf := make([]byte, 4<<10) // a common choice; it is most of an idle connection's memory
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// resp reads into a buffer that keeps a request cut short, as stream's
// OnData does, so the same parser runs unchanged.
func resp(c net.Conn, store *kv.Store) {
	s := kv.NewSession(store)
	w := bufio.NewWriterSize(c, 64<<10)
	buf := make([]byte, 0, 64<<10)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= 4<<20 {
				return
			}
			nb := make([]byte, len(buf), 2*cap(buf))
			copy(nb, buf)
			buf = nb
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		consumed := 0
		for {
			k, closeConn := s.Feed(buf[consumed:])
			consumed += k
			w.Write(s.Out)
			s.Out = s.Out[:0]
			if closeConn {
				w.Flush()
				return
			}
			if k == 0 || consumed == len(buf) {
				break
			}
		}
		if w.Flush() != nil {
			return
		}
		buf = buf[:copy(buf, buf[consumed:])]
		if err != nil {
			return
		}
	}
}
