package stream_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/stream"
)

// Listen and Dial on every network: the listener reports the port the
// kernel chose, a connection dialed on the loop exchanges a message with
// an accepted one, and both report the addresses of Go's net types.
func TestListenDialNetworks(t *testing.T) {
	for network, addr := range listenAddrs(t) {
		t.Run(network, func(t *testing.T) {
			l := newLoop(t)
			var srv, cli closes
			var ln *stream.Listener
			ln, err := stream.Listen(l, network, addr, func(c *stream.Conn) {
				srv.watch(c)
				echo(c)
				ln.Close(nil)
			})
			require.NoError(t, err)
			switch a := ln.Addr().(type) {
			case *net.TCPAddr:
				require.NotZero(t, a.Port, "port 0 resolved to the bound port")
			case *net.UnixAddr:
				require.Equal(t, addr, a.Name)
			default:
				t.Fatalf("Addr %T", a)
			}
			var got []byte
			inDial := true
			err = stream.Dial(l, network, ln.Addr().String(), func(c *stream.Conn, err error) {
				require.False(t, inDial, "onConnect ran inside Dial")
				require.NoError(t, err)
				require.Equal(t, ln.Addr().String(), c.RemoteAddr().String())
				require.NotNil(t, c.LocalAddr())
				cli.watch(c)
				c.OnData(func(c *stream.Conn, data []byte) int {
					got = append(got, data...)
					if len(got) == 5 {
						c.Close(nil)
					}
					return len(data)
				})
				_, err = c.Write([]byte("hello"))
				require.NoError(t, err)
			})
			inDial = false
			require.NoError(t, err)
			run(t, l)
			require.Equal(t, "hello", string(got))
			require.Equal(t, 1, cli.n)
			require.NoError(t, cli.err)
			require.Equal(t, 1, srv.n)
			require.ErrorIs(t, srv.err, io.EOF, "the server saw the client end")
			if network == "unix" {
				_, err := os.Stat(addr)
				require.ErrorIs(t, err, os.ErrNotExist, "the socket path is removed at close")
			}
		})
	}
}

// Open adopts a connected socket, TCP (from a Go listener) or Unix (a
// socketpair).
func TestOpen(t *testing.T) {
	t.Run("unix", func(t *testing.T) {
		l := newLoop(t)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		peer := os.NewFile(uintptr(fds[1]), "peer")
		defer peer.Close()
		c, err := stream.Open(l, fds[0])
		require.NoError(t, err)
		var cc closes
		cc.watch(c)
		echo(c)
		_, err = peer.Write([]byte("ping"))
		require.NoError(t, err)
		go func() {
			buf := make([]byte, 4)
			_, err := io.ReadFull(peer, buf)
			if err != nil || string(buf) != "ping" {
				t.Errorf("echo: %q %v", buf, err)
			}
			peer.Close()
		}()
		run(t, l)
		require.Equal(t, 1, cc.n)
		require.ErrorIs(t, cc.err, io.EOF)
	})
	t.Run("tcp", func(t *testing.T) {
		l := newLoop(t)
		gl, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer gl.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s, err := gl.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			_, _ = s.Write([]byte("from go"))
		}()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		port := gl.Addr().(*net.TCPAddr).Port
		require.NoError(t, unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}))
		c, err := stream.Open(l, fd)
		require.NoError(t, err)
		require.Equal(t, gl.Addr().String(), c.RemoteAddr().String())
		var got []byte
		var cc closes
		cc.watch(c)
		c.OnData(func(c *stream.Conn, data []byte) int { got = append(got, data...); return len(data) })
		run(t, l)
		<-done
		require.Equal(t, "from go", string(got))
		require.Equal(t, 1, cc.n)
		require.ErrorIs(t, cc.err, io.EOF)
	})
}

// A refused connect reaches onConnect as (nil, ECONNREFUSED), later; a
// missing Unix socket as (nil, ENOENT).
func TestDialRefused(t *testing.T) {
	l := newLoop(t)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := gl.Addr().String()
	gl.Close()
	calls := 0
	err = stream.Dial(l, "tcp", addr, func(c *stream.Conn, err error) {
		calls++
		require.Nil(t, c)
		require.ErrorIs(t, err, unix.ECONNREFUSED)
		require.Contains(t, err.Error(), "stream: dial tcp "+addr+": connect:")
	})
	require.NoError(t, err)
	missing := filepath.Join(t.TempDir(), "nobody")
	err = stream.Dial(l, "unix", missing, func(c *stream.Conn, err error) {
		calls++
		require.Nil(t, c)
		require.ErrorIs(t, err, unix.ENOENT)
	})
	require.NoError(t, err)
	require.Zero(t, calls, "onConnect ran inside Dial")
	run(t, l)
	require.Equal(t, 2, calls)
}

// A host name is resolved on the loop's worker pool and connects.
func TestDialHostName(t *testing.T) {
	l := newLoop(t)
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp4", "127.0.0.1:0", func(c *stream.Conn) { echo(c); ln.Close(nil) })
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	var got string
	err = stream.Dial(l, "tcp4", net.JoinHostPort("localhost", strconv.Itoa(port)), func(c *stream.Conn, err error) {
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1", c.RemoteAddr().(*net.TCPAddr).IP.String())
		c.OnData(func(c *stream.Conn, data []byte) int {
			got += string(data)
			c.Close(nil)
			return len(data)
		})
		_, _ = c.Write([]byte("x"))
	}, stream.WithDialTimeout(guard)) // a timeout that does not pass: its timer must not keep the loop
	require.NoError(t, err)
	run(t, l)
	require.Equal(t, "x", got)
}

// frames returns n length-prefixed frames: a 2-byte big-endian length and
// that many bytes, frame i holding byte i.
func frames(n int) []byte {
	var out []byte
	for i := range n {
		size := 1 + i*7%300
		out = binary.BigEndian.AppendUint16(out, uint16(size))
		out = append(out, bytes.Repeat([]byte{byte(i)}, size)...)
	}
	return out
}

// OnData keeps what the parser did not consume: a parser that consumes
// whole frames only sees every frame once, whether the frames arrive one
// byte at a time or many in one burst, and never copies a partial frame.
func TestOnDataUnconsumed(t *testing.T) {
	for _, mode := range []string{"bytewise", "burst"} {
		t.Run(mode, func(t *testing.T) {
			l := newLoop(t)
			const n = 200
			wire := frames(n)
			seen := 0
			partial := 0 // deliveries that ended in a partial frame
			var cc closes
			var ln *stream.Listener
			ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
				ln.Close(nil)
				cc.watch(c)
				c.OnData(func(c *stream.Conn, data []byte) int {
					used := 0
					for {
						rest := data[used:]
						if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
							if len(rest) > 0 {
								partial++
							}
							return used
						}
						size := int(binary.BigEndian.Uint16(rest))
						body := rest[2 : 2+size]
						if size != 1+seen*7%300 || !bytes.Equal(body, bytes.Repeat([]byte{byte(seen)}, size)) {
							t.Errorf("frame %d corrupt", seen)
						}
						seen++
						used += 2 + size
					}
				})
			})
			require.NoError(t, err)
			conn := goDial(t, ln)
			go func() {
				defer conn.Close()
				if mode == "burst" {
					_, _ = conn.Write(wire)
					return
				}
				for i := range wire {
					if _, err := conn.Write(wire[i : i+1]); err != nil {
						t.Error(err)
						return
					}
					if i%64 == 0 {
						time.Sleep(100 * time.Microsecond) // let some bytes arrive alone
					}
				}
			}()
			run(t, l)
			require.Equal(t, n, seen)
			require.Equal(t, 1, cc.n)
			require.ErrorIs(t, cc.err, io.EOF)
			if mode == "bytewise" {
				require.Positive(t, partial, "some deliveries ended inside a frame")
			}
		})
	}
}

// A connection that never consumes its input ends with ENOBUFS once it
// keeps more than WithMaxBuffered.
func TestMaxBuffered(t *testing.T) {
	l := newLoop(t)
	var cc closes
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		c.OnData(func(*stream.Conn, []byte) int { return 0 })
	}, stream.WithMaxBuffered(1024), stream.WithReadBuffer(512))
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	go func() { _, _ = conn.Write(make([]byte, 8192)) }()
	run(t, l)
	require.Equal(t, 1, cc.n)
	require.ErrorIs(t, cc.err, unix.ENOBUFS)
	require.Contains(t, cc.err.Error(), "stream: read: ")
}

// pattern is byte i of a test stream.
func pattern(i int) byte { return byte(i*31 + i>>12) }

// A 64 MiB Write to a slow reader is delivered whole and in order; the
// queue rises above the high-water mark (Writable false), falls back, and
// OnDrain runs once when it is empty.
func TestLargeWriteSlowReader(t *testing.T) {
	l := newLoop(t)
	const size = 64 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = pattern(i)
	}
	var cc closes
	drains := 0
	var peak, atDrain int
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		n, err := c.Write(data)
		require.NoError(t, err)
		require.Equal(t, size, n)
		peak = c.Buffered()
		require.Greater(t, peak, stream.DefaultHighWater, "most of it queued")
		require.False(t, c.Writable(), "above the high-water mark")
		clear(data) // Write copied what it queued
		c.OnDrain(func(c *stream.Conn) {
			drains++
			atDrain = c.Buffered()
			require.True(t, c.Writable())
			c.Close(nil)
		})
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		got := 0
		for got < size {
			if got%(4<<20) == 0 {
				time.Sleep(5 * time.Millisecond) // slow
			}
			n, err := conn.Read(buf)
			for k := range n {
				if buf[k] != pattern(got+k) {
					errc <- errors.New("corrupt or reordered at " + strconv.Itoa(got+k))
					return
				}
			}
			got += n
			if err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	run(t, l)
	require.NoError(t, <-errc)
	require.Equal(t, 1, drains)
	require.Zero(t, atDrain)
	require.Equal(t, 1, cc.n)
	require.NoError(t, cc.err)
}

// Past WithMaxQueued a write fails with ENOBUFS and queues nothing.
func TestMaxQueued(t *testing.T) {
	l := newLoop(t)
	const limit = 256 << 10
	var ln *stream.Listener
	refused := 0
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		chunk := make([]byte, 16<<10)
		for range 10000 {
			before := c.Buffered()
			if _, err := c.Write(chunk); err != nil {
				require.ErrorIs(t, err, unix.ENOBUFS)
				require.Contains(t, err.Error(), "stream: write: ")
				require.Equal(t, before, c.Buffered(), "nothing queued")
				require.LessOrEqual(t, c.Buffered(), limit)
				require.ErrorIs(t, c.Writev([][]byte{chunk}, func(error) { t.Error("done of a refused Writev") }), unix.ENOBUFS)
				refused++
				break
			}
		}
		c.Close(nil)
	}, stream.WithMaxQueued(limit))
	require.NoError(t, err)
	conn := goDial(t, ln) // never reads
	defer conn.Close()
	run(t, l)
	require.Equal(t, 1, refused)
}

// Writev sends the caller's buffers without copying them (a change made
// while they wait in the queue is what the peer reads) and calls each done
// once, after the kernel took the bytes, never inside Writev.
func TestWritev(t *testing.T) {
	l := newLoop(t)
	const nbufs = 3000 // more than one sendmsg's iovec limit
	bufs := make([][]byte, nbufs)
	var want []byte
	for i := range bufs {
		bufs[i] = bytes.Repeat([]byte{byte(i)}, 1+i%100)
	}
	dones := make([]int, 4)
	readDone := make(chan struct{})
	var conn net.Conn
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		// Fill the kernel's buffers so the Writevs below wait in the queue.
		filler := make([]byte, 1<<20)
		for c.Buffered() == 0 {
			_, err := c.Write(filler)
			require.NoError(t, err)
			want = append(want, filler...)
		}
		inCall := true
		for k := range 4 {
			part := bufs[k*nbufs/4 : (k+1)*nbufs/4]
			require.NoError(t, c.Writev(part, func(err error) {
				require.False(t, inCall, "done ran inside Writev")
				require.NoError(t, err)
				dones[k]++
				if k == 3 {
					c.Close(nil)
				}
			}))
		}
		inCall = false
		bufs[0][0] = 0xEE // queued by reference: the peer must read this
		for _, b := range bufs {
			want = append(want, b...)
		}
		go func() {
			defer close(readDone)
			got, err := io.ReadAll(conn)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("peer read %d bytes (want %d), equal %v: %v", len(got), len(want), bytes.Equal(got, want), err)
			}
		}()
	})
	require.NoError(t, err)
	conn = goDial(t, ln)
	defer conn.Close()
	run(t, l)
	<-readDone
	require.Equal(t, []int{1, 1, 1, 1}, dones)
}

// AsyncWrite from 8 goroutines delivers every buffer once, each
// contiguously, and calls every done once.
func TestAsyncWrite(t *testing.T) {
	l := newLoop(t)
	const writers, each, rec = 8, 500, 64
	var mu sync.Mutex
	dones := 0
	var wg sync.WaitGroup
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) }) // keeps the loop running
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					p := make([]byte, rec)
					binary.BigEndian.PutUint32(p, uint32(w))
					binary.BigEndian.PutUint32(p[4:], uint32(i))
					for k := 8; k < rec; k++ {
						p[k] = byte(w*i + k)
					}
					if err := c.AsyncWrite(p, func(err error) {
						if err != nil {
							t.Errorf("done: %v", err)
						}
						mu.Lock()
						dones++
						mu.Unlock()
					}); err != nil {
						t.Errorf("AsyncWrite: %v", err)
						return
					}
				}
			}()
		}
		go func() {
			wg.Wait()
			_ = l.Post(func() { c.Shutdown(func(error) { c.Close(nil) }) })
		}()
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	var got []byte
	readDone := make(chan error, 1)
	go func() {
		var err error
		got, err = io.ReadAll(conn)
		readDone <- err
	}()
	run(t, l)
	require.NoError(t, <-readDone)
	require.Equal(t, writers*each*rec, len(got))
	next := make([]uint32, writers)
	for off := 0; off < len(got); off += rec {
		p := got[off : off+rec]
		w, i := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
		require.Less(t, int(w), writers)
		require.Equal(t, next[w], i, "writer %d: in order, each once", w)
		next[w]++
		for k := 8; k < rec; k++ {
			require.Equal(t, byte(int(w)*int(i)+k), p[k], "record contiguous")
		}
	}
	require.Equal(t, writers*each, dones)
}

// AsyncWrite respects WithMaxQueued: past it the call fails with ENOBUFS
// and its done never runs.
func TestAsyncWriteBounded(t *testing.T) {
	l := newLoop(t)
	const limit = 64 << 10
	var refused, dones, accepted int
	var mu sync.Mutex
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) }) // keeps the loop running
		// Fill the kernel's buffers: from now on writes queue.
		for c.Buffered() == 0 {
			_, err := c.Write(make([]byte, 16<<10))
			require.NoError(t, err)
		}
		go func() {
			p := make([]byte, 4<<10)
			for range 64 { // 256 KiB, four times the limit, before the loop takes any
				err := c.AsyncWrite(p, func(error) { mu.Lock(); dones++; mu.Unlock() })
				mu.Lock()
				if err != nil {
					if !errors.Is(err, unix.ENOBUFS) {
						t.Errorf("AsyncWrite: %v", err)
					}
					refused++
				} else {
					accepted++
				}
				mu.Unlock()
			}
			_ = l.Post(func() { c.Close(nil) })
		}()
	}, stream.WithMaxQueued(limit))
	require.NoError(t, err)
	conn := goDial(t, ln) // never reads
	defer conn.Close()
	run(t, l)
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, refused)
	require.Equal(t, accepted, dones, "every accepted AsyncWrite's done ran once, no refused one's")
}

// The peer's half-close with no OnEnd: what is queued is flushed, then the
// connection closes with io.EOF.
func TestPeerEndNoOnEnd(t *testing.T) {
	l := newLoop(t)
	const size = 8 << 20
	var cc closes
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		_, err := c.Write(make([]byte, size))
		require.NoError(t, err)
		require.Positive(t, c.Buffered())
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	n := make(chan int64, 1)
	go func() { k, _ := io.Copy(io.Discard, conn); n <- k }()
	run(t, l)
	require.EqualValues(t, size, <-n, "the queue was flushed before the close")
	require.Equal(t, 1, cc.n)
	require.ErrorIs(t, cc.err, io.EOF)
}

// With OnEnd set the connection stays writable after the peer's end until
// Shutdown, whose FIN goes out only after the queue is flushed.
func TestOnEndAndShutdown(t *testing.T) {
	l := newLoop(t)
	const size = 8 << 20
	var cc closes
	ends := 0
	var shutErr error
	shutCalls := 0
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
		c.OnEnd(func(c *stream.Conn) {
			ends++
			require.True(t, c.Writable())
			_, err := c.Write(bytes.Repeat([]byte{7}, size))
			require.NoError(t, err)
			require.Positive(t, c.Buffered(), "queued: the FIN must wait")
			inCall := true
			c.Shutdown(func(err error) {
				require.False(t, inCall)
				shutCalls++
				shutErr = err
				c.Close(nil)
			})
			inCall = false
			_, err = c.Write([]byte{1})
			require.ErrorIs(t, err, unix.EPIPE, "no writes after Shutdown")
		})
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	res := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(conn); res <- b }()
	run(t, l)
	got := <-res
	require.Equal(t, size, len(got), "every byte before the FIN")
	require.Equal(t, bytes.Repeat([]byte{7}, size), got)
	require.Equal(t, 1, ends)
	require.Equal(t, 1, shutCalls)
	require.NoError(t, shutErr)
	require.Equal(t, 1, cc.n)
	require.NoError(t, cc.err)
}

// Close gives the done callbacks of queued writes os.ErrClosed, then runs
// OnClose once with nil.
func TestCloseFailsQueued(t *testing.T) {
	l := newLoop(t)
	var cc closes
	var doneErrs []error
	var shutErr error
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		for c.Buffered() == 0 {
			_, err := c.Write(make([]byte, 1<<20))
			require.NoError(t, err)
		}
		for range 3 {
			require.NoError(t, c.Writev([][]byte{make([]byte, 100)}, func(err error) {
				require.Zero(t, cc.n, "done before OnClose")
				doneErrs = append(doneErrs, err)
			}))
		}
		c.Shutdown(func(err error) { shutErr = err })
		c.Close(nil)
		c.Close(nil) // a second Close does nothing
		_, err := c.Write([]byte{1})
		require.ErrorIs(t, err, os.ErrClosed)
		require.ErrorIs(t, c.AsyncWrite([]byte{1}, nil), os.ErrClosed)
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	run(t, l)
	require.Len(t, doneErrs, 3)
	for _, e := range doneErrs {
		require.ErrorIs(t, e, os.ErrClosed)
	}
	require.ErrorIs(t, shutErr, os.ErrClosed)
	require.Equal(t, 1, cc.n)
	require.NoError(t, cc.err)
}

// CloseReset makes the peer see ECONNRESET.
func TestCloseReset(t *testing.T) {
	l := newLoop(t)
	var cc closes
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		c.CloseReset(nil)
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	run(t, l)
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, unix.ECONNRESET)
	require.Equal(t, 1, cc.n)
	require.NoError(t, cc.err)
}

// An RST from the peer ends the connection with ECONNRESET.
func TestPeerReset(t *testing.T) {
	l := newLoop(t)
	var cc closes
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	require.NoError(t, conn.(*net.TCPConn).SetLinger(0))
	_, err = conn.Write([]byte("x"))
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	run(t, l)
	require.Equal(t, 1, cc.n)
	require.ErrorIs(t, cc.err, unix.ECONNRESET)
}

// Writing to a peer that closed is EPIPE or ECONNRESET, never a SIGPIPE.
func TestWriteClosedPeer(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	l := newLoop(t)
	var cc closes
	var werr error
	var conn net.Conn
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		cc.watch(c)
		conn.Close()
		var try func()
		try = func() {
			for range 100 {
				if _, err := c.Write([]byte("after the peer left")); err != nil {
					werr = err
					return
				}
			}
			if !c.IsClosing() {
				l.AfterFunc(time.Millisecond, try)
			}
		}
		l.AfterFunc(time.Millisecond, try)
	})
	require.NoError(t, err)
	conn = goDial(t, ln)
	run(t, l)
	require.True(t, errors.Is(werr, unix.EPIPE) || errors.Is(werr, unix.ECONNRESET), "got %v", werr)
	require.Contains(t, werr.Error(), "stream: write: ")
	require.Equal(t, 1, cc.n)
	require.ErrorIs(t, cc.err, werr)
	select {
	case s := <-sigs:
		t.Fatalf("got %v", s)
	default:
	}
}

// PauseRead stops deliveries, ResumeRead restarts them, and input left
// unconsumed comes back after ResumeRead without new input.
func TestPauseResume(t *testing.T) {
	l := newLoop(t)
	var deliveries []string
	var ln *stream.Listener
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(c *stream.Conn, d []byte) int {
			deliveries = append(deliveries, string(d))
			if len(deliveries) == 1 {
				c.PauseRead()
				l.AfterFunc(20*time.Millisecond, func() { c.ResumeRead() })
				return 0
			}
			c.Close(nil)
			return len(d)
		})
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	_, err = conn.Write([]byte("abc"))
	require.NoError(t, err)
	run(t, l)
	require.Equal(t, []string{"abc", "abc"}, deliveries)
}

// A loop that closes its handles (here its Close) ends connections (one
// with an idle timer too), a dial in progress and a listener: descriptors
// closed, OnClose (or onConnect) once with os.ErrClosed.
func TestLoopClosesConn(t *testing.T) {
	l := newLoop(t)
	var cc, idle closes
	n := 0
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
		if n++; n == 1 {
			cc.watch(c)
			return
		}
		idle.watch(c)
		c.SetIdleTimeout(time.Hour) // its timer is closed before its watcher
		l.Stop()
	})
	require.NoError(t, err)
	conn := goDial(t, ln)
	defer conn.Close()
	conn2 := goDial(t, ln)
	defer conn2.Close()
	run(t, l)
	require.Zero(t, cc.n)
	connected := 0
	var dialErr error
	require.NoError(t, stream.Dial(l, "tcp", ln.Addr().String(), func(c *stream.Conn, err error) {
		connected++
		dialErr = err
	}))
	require.NoError(t, l.Close())
	require.Equal(t, 1, cc.n)
	require.ErrorIs(t, cc.err, os.ErrClosed)
	require.Equal(t, 1, idle.n)
	require.ErrorIs(t, idle.err, os.ErrClosed)
	require.Equal(t, 1, connected, "a dial in progress is told")
	require.ErrorIs(t, dialErr, os.ErrClosed)
	require.True(t, ln.IsClosing())
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the loop's Close closed the socket")
}

// An empty host listens on every address: for "tcp" both IPv4 and IPv6
// (one dual-stack socket, as Go's net does); Dial with an empty host
// reaches the local system.
func TestListenAllAddresses(t *testing.T) {
	l := newLoop(t)
	var ln *stream.Listener
	served := 0
	ln, err := stream.Listen(l, "tcp", ":0", func(c *stream.Conn) {
		if served++; served == 3 {
			ln.Close(nil)
		}
		echo(c)
	})
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	echoed := 0
	for _, target := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:" + port},
		{"tcp6", "[::1]:" + port},
		{"tcp", ":" + port},
	} {
		require.NoError(t, stream.Dial(l, target.network, target.addr, func(c *stream.Conn, err error) {
			require.NoError(t, err, target.addr)
			c.OnData(func(c *stream.Conn, d []byte) int {
				echoed++
				c.Close(nil)
				return len(d)
			})
			_, err = c.Write([]byte("x"))
			require.NoError(t, err)
		}))
	}
	run(t, l)
	require.Equal(t, 3, served)
	require.Equal(t, 3, echoed)
}

// WithDialTimeout ends a connect that does not finish: a listener whose
// accept queue is full makes the kernel drop further SYNs, so the connect
// hangs, and onConnect gets os.ErrDeadlineExceeded (and ETIMEDOUT).
func TestDialTimeout(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	require.NoError(t, err)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*unix.SockaddrInet4).Port))
	// Fill the accept queue until a connect no longer completes.
	full := false
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			full = true
			break
		}
		defer c.Close()
	}
	if !full {
		t.Skip("the kernel completed every connect: cannot make one hang here")
	}
	l := newLoop(t)
	calls := 0
	var got error
	require.NoError(t, stream.Dial(l, "tcp", addr, func(c *stream.Conn, err error) {
		calls++
		got = err
		require.Nil(t, c)
	}, stream.WithDialTimeout(100*time.Millisecond)))
	run(t, l)
	require.Equal(t, 1, calls)
	require.ErrorIs(t, got, os.ErrDeadlineExceeded)
	require.ErrorIs(t, got, unix.ETIMEDOUT)
	require.Contains(t, got.Error(), "stream: dial tcp "+addr+": after 100ms: ")
}

// An accepted connection reports its peer's address, the client's local
// one, and still does in OnClose, once its descriptor is closed (the
// connection keeps the address, not the descriptor, to answer with): IPv4,
// IPv6, IPv4 on a dual-stack listener (a v4-mapped peer), an unnamed Unix
// peer ("@", as Go's net names it), a named one and an abstract one.
func TestAcceptedRemoteAddr(t *testing.T) {
	cases := listenAddrs(t)
	cases["dual"] = ":0"
	cases["unix-named"] = filepath.Join(t.TempDir(), "named")
	cases["unix-abstract"] = filepath.Join(t.TempDir(), "abstract")
	for name, addr := range cases {
		t.Run(name, func(t *testing.T) {
			network := name
			switch name {
			case "dual":
				network = "tcp"
			case "unix-named", "unix-abstract":
				network = "unix"
			}
			l := newLoop(t)
			var open, inClose string
			var ln *stream.Listener
			ln, err := stream.Listen(l, network, addr, func(c *stream.Conn) {
				ln.Close(nil)
				open = c.RemoteAddr().String()
				c.OnClose(func(c *stream.Conn, _ error) { inClose = c.RemoteAddr().String() })
				c.Close(nil)
			})
			require.NoError(t, err)
			var want string
			if network == "unix" && name != "unix" {
				fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				defer unix.Close(fd)
				want = filepath.Join(t.TempDir(), "client")
				if name == "unix-abstract" {
					want = fmt.Sprintf("@eventpipe-stream-test-%d", os.Getpid())
				}
				require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: want}))
				require.NoError(t, unix.Connect(fd, &unix.SockaddrUnix{Name: addr}))
			} else {
				a := ln.Addr().String()
				if name == "dual" {
					a = net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
				}
				conn, err := net.DialTimeout(ln.Addr().Network(), a, guard)
				require.NoError(t, err)
				defer conn.Close()
				want = conn.LocalAddr().String()
			}
			run(t, l)
			require.Equal(t, want, open)
			require.Equal(t, want, inClose, "in OnClose, after the descriptor is closed")
		})
	}
}
