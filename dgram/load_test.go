package dgram_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/loop"
)

// tally counts what a receiver got: data datagrams (sender byte, then a
// big-endian sequence number, then filler that must be intact) and
// markers, which carry the kernel's drop counter once the data is in.
type tally struct {
	data, markers, dups, corrupt uint64
	seen                         []map[uint32]bool
}

func newTally(senders int) *tally {
	t := &tally{seen: make([]map[uint32]bool, senders)}
	for i := range t.seen {
		t.seen[i] = make(map[uint32]bool)
	}
	return t
}

const marker = 0xff

func payload(buf []byte, sender int, seq uint32) []byte {
	buf[0] = byte(sender)
	binary.BigEndian.PutUint32(buf[1:], seq)
	for i := 5; i < len(buf); i++ {
		buf[i] = byte(seq) + byte(i)
	}
	return buf
}

func (t *tally) packet(_ *dgram.Conn, data []byte, _ netip.AddrPort) {
	if len(data) >= 1 && data[0] == marker {
		t.markers++
		return
	}
	if len(data) < 5 || int(data[0]) >= len(t.seen) {
		t.corrupt++
		return
	}
	seq := binary.BigEndian.Uint32(data[1:])
	for i := 5; i < len(data); i++ {
		if data[i] != byte(seq)+byte(i) {
			t.corrupt++
			return
		}
	}
	if t.seen[data[0]][seq] {
		t.dups++
	}
	t.seen[data[0]][seq] = true
	t.data++
}

// reconcile runs the loop until every datagram sent to server is either
// received or counted by the kernel as dropped. The kernel reports its
// drop counter on the next datagram it queues, so markers are sent
// (from probe, one every 20ms) until the books balance:
// data + markers received + dropped == sent + markers sent.
func reconcile(t *testing.T, l *loop.Loop, server, probe *dgram.Conn, tl *tally, sent func() (uint64, bool)) {
	t.Helper()
	var markersSent uint64
	var last time.Time
	runUntil(t, l, 30*time.Second, func() bool {
		n, done := sent()
		if !done {
			return false
		}
		st := server.Stats()
		if markersSent > 0 && tl.markers > 0 && tl.data+tl.markers+st.Dropped == n+markersSent {
			return true
		}
		if time.Since(last) > 20*time.Millisecond {
			require.NoError(t, probe.WriteTo([]byte{marker}, server.LocalAddr()))
			markersSent++
			last = time.Now()
		}
		return false
	})
	st := server.Stats()
	t.Logf("sent %d, received %d, dropped %d (kernel), markers %d/%d, %d recvmmsg calls: %.1f datagrams per call",
		func() uint64 { n, _ := sent(); return n }(), tl.data, st.Dropped, tl.markers, markersSent,
		st.RecvCalls, float64(st.Received)/float64(max(st.RecvCalls, 1)))
	assert.Zero(t, tl.dups, "duplicates")
	assert.Zero(t, tl.corrupt, "corrupt datagrams")
	assert.Zero(t, st.Truncated)
}

// Test100kFromFourSenders: 100,000 datagrams from 4 goroutines with their
// own sockets all arrive, or are counted as dropped by the kernel: with a
// roomy receive buffer (most arrive) and with a tight one (the kernel
// drops many while the loop reads). Under that load recvmmsg returns more
// than one datagram per call.
func Test100kFromFourSenders(t *testing.T) {
	for _, c := range []struct {
		name   string
		rcvbuf int
	}{{"roomy", 8 << 20}, {"tight", 16 << 10}} {
		t.Run(c.name, func(t *testing.T) { fourSenders(t, c.rcvbuf) })
	}
}

func fourSenders(t *testing.T, rcvbuf int) {
	const senders, each = 4, 25_000
	l := newLoop(t)
	tl := newTally(senders)
	server := listen(t, l, "udp4", "127.0.0.1:0", tl.packet)
	setRcvbuf(t, server.Fd(), rcvbuf)
	probe := listen(t, l, "udp4", "127.0.0.1:0", ignore)

	var sentN atomic.Uint64
	var finished atomic.Int32
	var wg sync.WaitGroup
	dst := net.UDPAddrFromAddrPort(server.LocalAddr())
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer finished.Add(1)
			conn, err := net.DialUDP("udp4", nil, dst)
			if !assert.NoError(t, err) {
				return
			}
			defer conn.Close()
			buf := make([]byte, 64)
			for seq := range uint32(each) {
				if _, err := conn.Write(payload(buf, s, seq)); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
				sentN.Add(1)
			}
		}()
	}
	reconcile(t, l, server, probe, tl, func() (uint64, bool) {
		return sentN.Load(), finished.Load() == senders
	})
	wg.Wait()
	require.Equal(t, uint64(senders*each), sentN.Load())
	st := server.Stats()
	assert.Greater(t, st.Received, st.RecvCalls, "more than one datagram per recvmmsg under load")
}

// TestForcedDrops: a reader that is not running and a tiny receive buffer
// make the kernel drop most of a burst; the drops it reports through
// SO_RXQ_OVFL make up exactly for what did not arrive.
func TestForcedDrops(t *testing.T) {
	const burst = 2000
	l := newLoop(t)
	tl := newTally(1)
	server := listen(t, l, "udp4", "127.0.0.1:0", tl.packet)
	require.NoError(t, unix.SetsockoptInt(server.Fd(), unix.SOL_SOCKET, unix.SO_RCVBUF, 1))
	probe := listen(t, l, "udp4", "127.0.0.1:0", ignore)

	// The loop is not running: nobody reads while the burst goes out.
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(server.LocalAddr()))
	require.NoError(t, err)
	defer conn.Close()
	buf := make([]byte, 256)
	for seq := range uint32(burst) {
		_, err := conn.Write(payload(buf, 0, seq))
		require.NoError(t, err)
	}
	reconcile(t, l, server, probe, tl, func() (uint64, bool) { return burst, true })
	assert.Greater(t, server.Stats().Dropped, uint64(burst/2), "a buffer of a few KiB holds few of %d datagrams", burst)
	assert.Positive(t, tl.data)
}

// TestBatchedReads: datagrams already queued when the loop looks are read
// 32 (the default batch) per recvmmsg call.
func TestBatchedReads(t *testing.T) {
	const n = 96
	l := newLoop(t)
	got := 0
	server := listen(t, l, "udp4", "127.0.0.1:0", func(*dgram.Conn, []byte, netip.AddrPort) { got++ })
	client := listen(t, l, "udp4", "127.0.0.1:0", ignore)
	for i := range n {
		require.NoError(t, client.WriteTo([]byte{byte(i)}, server.LocalAddr()))
	}
	runUntil(t, l, 5*time.Second, func() bool { return got == n })
	st := server.Stats()
	t.Logf("%d datagrams in %d recvmmsg calls", st.Received, st.RecvCalls)
	assert.LessOrEqual(t, st.RecvCalls, uint64(n/2), "at least 2 per call")
	assert.GreaterOrEqual(t, st.RecvCalls, uint64(n/dgram.DefaultReadBatch), "never more than the batch per call")
}

// TestReusePort: two Conns bound to one address with WithReusePort share
// its datagrams, spread by the kernel over the senders' addresses.
func TestReusePort(t *testing.T) {
	const senders = 32
	l := newLoop(t)
	got := [2]int{}
	a := listen(t, l, "udp4", "127.0.0.1:0", func(*dgram.Conn, []byte, netip.AddrPort) { got[0]++ }, dgram.WithReusePort())
	listen(t, l, "udp4", a.LocalAddr().String(), func(*dgram.Conn, []byte, netip.AddrPort) { got[1]++ }, dgram.WithReusePort())
	for range senders {
		s := listen(t, l, "udp4", "127.0.0.1:0", ignore)
		require.NoError(t, s.WriteTo([]byte("x"), a.LocalAddr()))
	}
	runUntil(t, l, 5*time.Second, func() bool { return got[0]+got[1] == senders })
	t.Logf("spread %d/%d", got[0], got[1])
	assert.Positive(t, got[0], "each socket gets some of %d flows", senders)
	assert.Positive(t, got[1], "each socket gets some of %d flows", senders)
}

// setRcvbuf sets a socket's receive buffer past net.core.rmem_max where the
// process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN), and as far as rmem_max
// allows otherwise: the accounting checked is the same either way.
func setRcvbuf(t *testing.T, fd, n int) {
	t.Helper()
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	if errors.Is(err, unix.EPERM) {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	}
	require.NoError(t, err)
}
