package stream_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// openPair makes two connections on l over a Unix socket pair.
func openPair(b *testing.B, l *loop.Loop) (a, z *stream.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	if a, err = stream.Open(l, fds[0]); err != nil {
		b.Fatal(err)
	}
	if z, err = stream.Open(l, fds[1]); err != nil {
		b.Fatal(err)
	}
	return a, z
}

// BenchmarkPingPong: one 64-byte message bounced between two connections
// on one loop; an op is one round trip (two writes, two deliveries).
func BenchmarkPingPong(b *testing.B) {
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	a, z := openPair(b, l)
	msg := make([]byte, 64)
	left := b.N
	z.OnData(func(c *stream.Conn, d []byte) int {
		if len(d) < len(msg) {
			return 0
		}
		c.Write(d[:len(msg)])
		return len(msg)
	})
	a.OnData(func(c *stream.Conn, d []byte) int {
		if len(d) < len(msg) {
			return 0
		}
		if left--; left <= 0 {
			a.Close(nil)
			z.Close(nil)
			return len(msg)
		}
		c.Write(msg)
		return len(msg)
	})
	b.ReportAllocs()
	b.ResetTimer()
	a.Write(msg)
	if err := l.Run(b.Context()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkWriteQueued: 4 KiB writes into a peer that reads in 64 KiB
// chunks, so most go through the write queue and sendmsg batches.
func BenchmarkWriteQueued(b *testing.B) {
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	a, z := openPair(b, l)
	chunk := make([]byte, 4096)
	total, got := b.N*len(chunk), 0
	z.OnData(func(c *stream.Conn, d []byte) int {
		if got += len(d); got >= total {
			a.Close(nil)
			z.Close(nil)
		}
		return len(d)
	})
	sent := 0
	var pump func(*stream.Conn)
	pump = func(c *stream.Conn) {
		for sent < b.N && c.Writable() {
			c.Write(chunk)
			sent++
		}
	}
	a.OnDrain(pump)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	pump(a)
	if err := l.Run(b.Context()); err != nil {
		b.Fatal(err)
	}
}
