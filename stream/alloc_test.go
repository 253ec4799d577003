package stream_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/stream"
)

// A read delivered to OnData and a Write the kernel takes whole allocate
// nothing.
func TestAllocs(t *testing.T) {
	l := newLoop(t)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c, err := stream.Open(l, fds[0])
	require.NoError(t, err)
	got := 0
	c.OnData(func(_ *stream.Conn, d []byte) int { got += len(d); return len(d) })
	msg := []byte("0123456789abcdef")
	var sink [64]byte
	deliver := func() {
		if _, err := unix.Write(fds[1], msg); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RunOnce(); err != nil {
			t.Fatal(err)
		}
	}
	deliver() // warm up: the shared read buffer
	read := testing.AllocsPerRun(200, deliver)
	require.Equal(t, 202*len(msg), got) // AllocsPerRun warms up once more
	write := testing.AllocsPerRun(200, func() {
		if n, err := c.Write(msg); err != nil || n != len(msg) {
			t.Fatal(n, err)
		}
		if c.Buffered() != 0 {
			t.Fatal("queued")
		}
		if _, err := unix.Read(fds[1], sink[:]); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("figures: allocations per OnData delivery %.1f, per Write taken whole %.1f", read, write)
	require.Zero(t, read, "allocations per OnData delivery")
	require.Zero(t, write, "allocations per Write the kernel took whole")
	c.Close(nil)
	_, err = l.RunNoWait()
	require.NoError(t, err)
}
