package dgram_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
)

// TestSendQueue: when the kernel refuses a datagram with EAGAIN, WriteTo
// copies it into the queue and every later datagram queues behind it, in
// order; the queue is flushed with sendmmsg, a batch per call, once the
// socket is writable, and OnDrain runs once it is empty, never inside
// WriteTo. (Loopback frees a datagram's send-buffer charge inside
// sendto, so a full send buffer is simulated for the first send only.)
func TestSendQueue(t *testing.T) {
	const n = 100
	l := newLoop(t)
	var got []byte
	server := listen(t, l, "udp4", "127.0.0.1:0", func(_ *dgram.Conn, data []byte, _ netip.AddrPort) {
		got = append(got, data[0])
	})
	drains := 0
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore, dgram.WithReadBatch(16))
	client.OnDrain(func(c *dgram.Conn) {
		drains++
		assert.Zero(t, c.Buffered())
	})
	undo := dgram.FailSends(1)
	defer undo()
	buf := make([]byte, 10)
	for i := range n {
		buf[0] = byte(i)
		require.NoError(t, client.WriteTo(buf, server.LocalAddr()))
		buf[0] = 0xee // the queue holds a copy
	}
	assert.Equal(t, n*10, client.Buffered())
	assert.Zero(t, drains, "OnDrain never runs inside WriteTo")
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == n })
	for i, b := range got {
		require.Equal(t, byte(i), b, "datagram %d out of order", i)
	}
	st := client.Stats()
	assert.Equal(t, uint64(n), st.Sent)
	assert.Equal(t, uint64((n+15)/16), st.SendCalls, "one sendmmsg per batch of 16")
	assert.Equal(t, 1, drains)
	assert.Zero(t, client.Buffered())

	// With the queue empty again, sends go straight to the kernel.
	require.NoError(t, client.WriteTo(buf, server.LocalAddr()))
	assert.Zero(t, client.Buffered())
	assert.Equal(t, uint64(n+1), client.Stats().Sent)
}

// TestSendQueueLimit: past WithMaxQueued a WriteTo fails with ENOBUFS and
// queues nothing; what was queued still goes out.
func TestSendQueueLimit(t *testing.T) {
	l := newLoop(t)
	got := 0
	server := listen(t, l, "udp4", "127.0.0.1:0", func(*dgram.Conn, []byte, netip.AddrPort) { got++ })
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore, dgram.WithMaxQueued(25))
	defer dgram.FailSends(1)()
	p := make([]byte, 10)
	require.NoError(t, client.WriteTo(p, server.LocalAddr()))
	require.NoError(t, client.WriteTo(p, server.LocalAddr()))
	err := client.WriteTo(p, server.LocalAddr())
	require.ErrorIs(t, err, unix.ENOBUFS)
	assert.Equal(t, "dgram: write to "+server.LocalAddr().String()+": send queue full (20 of 25 bytes): no buffer space available", err.Error())
	assert.Equal(t, 20, client.Buffered(), "the refused datagram queued nothing")
	runUntil(t, l, 5*time.Second, func() bool { return got == 2 })
	assert.Zero(t, client.Buffered())
}

// TestTruncated: datagrams longer than WithMaxPacket are counted, not
// delivered; one of exactly the maximum is delivered whole.
func TestTruncated(t *testing.T) {
	l := newLoop(t)
	var sizes []int
	server := listen(t, l, "udp4", "127.0.0.1:0", func(_ *dgram.Conn, data []byte, _ netip.AddrPort) {
		sizes = append(sizes, len(data))
	}, dgram.WithMaxPacket(100))
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	for _, n := range []int{50, 101, 100, 65000, 1} {
		require.NoError(t, client.WriteTo(make([]byte, n), server.LocalAddr()))
	}
	runUntil(t, l, 5*time.Second, func() bool { return len(sizes) == 3 })
	assert.Equal(t, []int{50, 100, 1}, sizes)
	assert.Equal(t, uint64(2), server.Stats().Truncated)
	assert.Equal(t, uint64(3), server.Stats().Received)
}

// TestZeroAllocs: a WriteTo the kernel takes and the delivery of the
// datagram to the packet callback allocate nothing.
func TestZeroAllocs(t *testing.T) {
	l := newLoop(t)
	got := 0
	server := listen(t, l, "udp4", "127.0.0.1:0", func(_ *dgram.Conn, data []byte, from netip.AddrPort) {
		if len(data) == 32 && from.IsValid() {
			got++
		}
	})
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	p := make([]byte, 32)
	to := server.LocalAddr()
	step := func() {
		want := got + 1
		if err := client.WriteTo(p, to); err != nil {
			t.Fatal(err)
		}
		for got < want {
			if _, err := l.RunOnce(); err != nil {
				t.Fatal(err)
			}
		}
	}
	step() // warm up
	allocs := testing.AllocsPerRun(1000, step)
	t.Logf("%.2f allocations per WriteTo + delivery", allocs)
	assert.Zero(t, allocs)
}
