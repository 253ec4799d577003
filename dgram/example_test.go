package dgram_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/loop"
)

// A server that answers each datagram with its upper-case copy, and a
// client on the same loop that asks once.
func Example() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()

	server, err := dgram.Listen(l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		reply := make([]byte, len(data))
		for i, b := range data {
			if 'a' <= b && b <= 'z' {
				b -= 'a' - 'A'
			}
			reply[i] = b
		}
		if err := c.WriteTo(reply, from); err != nil {
			fmt.Println(err)
		}
	})
	if err != nil {
		panic(err)
	}
	var client *dgram.Conn
	client, err = dgram.Listen(l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		fmt.Printf("%s from the server: %v\n", data, from == server.LocalAddr())
		client.Close(nil)
		server.Close(nil)
	})
	if err != nil {
		panic(err)
	}
	if err := client.WriteTo([]byte("hello"), server.LocalAddr()); err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("received:", server.Stats().Received, client.Stats().Received)
	// Output:
	// HELLO from the server: true
	// received: 1 1
}
