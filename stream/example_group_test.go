package stream_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/stream"
)

// A server on two loops: the acceptor hands connections to the loops in
// turn, and each is served on the loop it was handed to.
func ExampleListenGroup() {
	g, err := group.New(2)
	if err != nil {
		panic(err)
	}
	defer g.Close()
	gl, err := stream.ListenGroup(g, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		name := "loop 0"
		if c.Loop() == g.Loop(1) {
			name = "loop 1"
		}
		c.OnData(func(c *stream.Conn, data []byte) int {
			c.Write([]byte(name))
			return len(data)
		})
	}, stream.WithBalance(stream.RoundRobin))
	if err != nil {
		panic(err)
	}
	done := make(chan error)
	go func() { done <- g.Run(context.Background()) }()

	for range 3 {
		c, err := net.Dial("tcp", gl.Addr().String())
		if err != nil {
			panic(err)
		}
		c.Write([]byte("?"))
		reply := make([]byte, 6)
		io.ReadFull(c, reply)
		fmt.Printf("served on %s\n", reply)
		c.Close()
	}
	gl.Close(nil)
	if err := <-done; err != nil { // the loops end once nothing is left
		panic(err)
	}
	fmt.Println(gl.Stats().Accepted, "accepted")
	// Output:
	// served on loop 0
	// served on loop 1
	// served on loop 0
	// 3 accepted
}
