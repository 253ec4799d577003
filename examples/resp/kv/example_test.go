package kv_test

import (
	"fmt"

	"github.com/eventpipe/eventpipe/examples/resp/kv"
)

// A pipeline arriving in two pieces: the request cut short is left
// unconsumed and completed by the next arrival.
func ExampleSession_Feed() {
	s := kv.NewSession(kv.NewStore())
	in := []byte("SET greeting hello\r\n*2\r\n$3\r\nGET\r\n$8\r\ngree")
	n, _ := s.Feed(in)
	fmt.Printf("%q, %d bytes kept\n", s.Out, len(in)-n)

	s.Out = s.Out[:0]
	in = append(in[n:], "ting\r\n"...)
	n, _ = s.Feed(in)
	fmt.Printf("%q, %d bytes kept\n", s.Out, len(in)-n)
	// Output:
	// "+OK\r\n", 21 bytes kept
	// "$5\r\nhello\r\n", 0 bytes kept
}
