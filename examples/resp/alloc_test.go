package main

import (
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/examples/resp/kv"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// The server's whole path for PING, SET and GET — the read delivered to
// OnData, parsing, the store, the reply's Write — allocates nothing per
// request (SET of a key that exists; the pipeline of 16 as redis-benchmark
// -P 16 sends it).
func TestServerPathAllocatesNothing(t *testing.T) {
	before := leakcheck.Take()
	l, err := loop.New()
	require.NoError(t, err)
	defer func() {
		if err := l.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Error(err)
		}
		before.Check(t)
	}()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c, err := stream.Open(l, fds[0])
	require.NoError(t, err)
	s := kv.NewSession(kv.NewStore())
	c.OnData(func(c *stream.Conn, data []byte) int { return onData(c, s, data) })

	reply := make([]byte, 64<<10)
	roundTrip := func(req []byte, want int) {
		if _, err := unix.Write(fds[1], req); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RunOnce(); err != nil {
			t.Fatal(err)
		}
		n, err := unix.Read(fds[1], reply)
		if err != nil || n != want {
			t.Fatalf("reply of %d bytes (%v), want %d: %q", n, err, want, reply[:max(n, 0)])
		}
	}
	set := []byte("*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n")
	get := []byte("*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n")
	roundTrip(set, len("+OK\r\n")) // the key exists from now on
	pipeline := make([]byte, 0, 16*len(get))
	for range 16 {
		pipeline = append(pipeline, get...)
	}
	for name, tc := range map[string]struct {
		req  []byte
		want int
	}{
		"PING":        {[]byte("PING\r\n"), len("+PONG\r\n")},
		"SET":         {set, len("+OK\r\n")},
		"GET":         {get, len("$3\r\nxxx\r\n")},
		"GET x16":     {pipeline, 16 * len("$3\r\nxxx\r\n")},
		"PING (bulk)": {[]byte("*1\r\n$4\r\nPING\r\n"), len("+PONG\r\n")},
	} {
		allocs := testing.AllocsPerRun(200, func() { roundTrip(tc.req, tc.want) })
		require.Zero(t, allocs, "allocations per %s round trip", name)
	}
	c.Close(nil)
	_, err = l.RunNoWait()
	require.NoError(t, err)
}
