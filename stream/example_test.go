package stream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// An echo server and a client on one loop.
func Example() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	var ln *stream.Listener
	ln, err = stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil) // one connection is enough here
		c.OnData(func(c *stream.Conn, data []byte) int {
			c.Write(data)
			return len(data)
		})
		c.OnClose(func(_ *stream.Conn, err error) { fmt.Println("server: peer ended:", err) })
	})
	if err != nil {
		panic(err)
	}

	err = stream.Dial(l, "tcp", ln.Addr().String(), func(c *stream.Conn, err error) {
		if err != nil {
			fmt.Println("dial:", err)
			return
		}
		c.OnData(func(c *stream.Conn, data []byte) int {
			fmt.Printf("client: %q\n", data)
			c.Close(nil)
			return len(data)
		})
		c.Write([]byte("hello"))
	})
	if err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// client: "hello"
	// server: peer ended: EOF
}

// A length-prefixed frame parser: OnData consumes whole frames only and
// leaves a partial one for the next call, which gets it back with the rest
// appended.
func ExampleConn_OnData() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	var ln *stream.Listener
	ln, err = stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(c *stream.Conn, data []byte) int {
			used := 0
			for len(data)-used >= 2 {
				n := int(binary.BigEndian.Uint16(data[used:]))
				if len(data)-used < 2+n {
					break // partial: it comes back next time
				}
				fmt.Printf("frame %q\n", data[used+2:used+2+n])
				used += 2 + n
			}
			return used
		})
	})
	if err != nil {
		panic(err)
	}
	err = stream.Dial(l, "tcp", ln.Addr().String(), func(c *stream.Conn, err error) {
		if err != nil {
			panic(err)
		}
		wire := []byte("\x00\x05hello\x00\x05world")
		// Split in the middle of a frame: the parser never sees half of it.
		c.Write(wire[:4])
		l.AfterFunc(10e6, func() {
			c.Write(wire[4:])
			c.Shutdown(func(error) { c.Close(nil) })
		})
	})
	if err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// frame "hello"
	// frame "world"
}

// Dialing a port nobody listens on: onConnect gets the errno.
func ExampleDial() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	// Port 1 on loopback: nothing listens there on a test machine.
	err = stream.Dial(l, "tcp4", "127.0.0.1:1", func(c *stream.Conn, err error) {
		fmt.Println(err)
	})
	if err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// stream: dial tcp4 127.0.0.1:1: connect: connection refused
}

// Writing from another goroutine: AsyncWrite hands the buffer to the
// loop, which writes it in order after what was queued before; done runs
// on the loop once the kernel has taken it.
func ExampleConn_AsyncWrite() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	var ln *stream.Listener
	ln, err = stream.Listen(l, "unix", filepath.Join(os.TempDir(), fmt.Sprintf("stream-example-%d", os.Getpid())), func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(c *stream.Conn, data []byte) int { return len(data) }) // keeps the connection (and the loop) going
		go func() {
			// Not the loop's goroutine: only AsyncWrite is safe here.
			err := c.AsyncWrite([]byte("from another goroutine"), func(err error) {
				fmt.Println("server: written, err =", err)
				c.Shutdown(nil)
			})
			if err != nil {
				fmt.Println(err)
			}
		}()
	})
	if err != nil {
		panic(err)
	}
	err = stream.Dial(l, "unix", ln.Addr().String(), func(c *stream.Conn, err error) {
		if err != nil {
			panic(err)
		}
		var got []byte
		c.OnData(func(c *stream.Conn, data []byte) int {
			got = append(got, data...)
			return len(data)
		})
		c.OnClose(func(_ *stream.Conn, err error) { fmt.Printf("client: %q, then %v\n", got, err) })
	})
	if err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	// Output:
	// server: written, err = <nil>
	// client: "from another goroutine", then EOF
}
