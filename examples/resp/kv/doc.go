// Package kv is the protocol half of the RESP example (examples/resp): a
// RESP2 request parser that follows stream.Conn.OnData's rule (a request
// cut short is left unconsumed and completed by the next arrival), and a
// small command set (PING, ECHO, SET, GET, DEL, INCR, plus QUIT and the
// CONFIG GET that redis-benchmark asks first) over a shared, sharded,
// locked in-memory map.
//
// It knows nothing of sockets, so the benchmarks run the same parser and
// store under other network layers (gnet, Go's net) and compare only the
// networking.
package kv
