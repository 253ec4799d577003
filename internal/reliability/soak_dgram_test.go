package reliability

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/dgram"
	"github.com/eventpipe/eventpipe/loop"
)

// The datagram part of the soak: client/server pairs of dgram Conns on the
// soak's loop echoing a window of datagrams each, and a churner opening a
// short-lived Conn every few milliseconds that asks one echo server once
// and closes. Every datagram comes back intact and in order, or was
// dropped by the kernel and counted so (SO_RXQ_OVFL); descriptors stay
// flat (the soak's samples) as Conns come and go.
const (
	soakDgramPairs  = 16
	soakDgramWindow = 8  // datagrams in flight per pair
	soakDgramSize   = 64 // bytes per datagram
	soakDgramChurn  = 5 * time.Millisecond
	soakDgramGrace  = 5 * time.Second // for the last echoes after the load
)

type soakDgramPair struct {
	client, server   *dgram.Conn
	sent, back, lost uint64
	done             bool
}

type soakDgram struct {
	l        *loop.Loop
	pairs    []*soakDgramPair
	echo     *dgram.Conn // the churner's server
	churn    *loop.Timer
	grace    *loop.Timer
	current  *dgram.Conn // the churner's Conn awaiting its reply
	askedAt  time.Time
	stale    int // churned Conns replaced while still waiting
	opened   int
	replies  int
	errs     int
	stopping bool
	open     int // pairs not yet closed
	t        *testing.T
}

func soakDgramByte(seq uint64, k int) byte { return byte(seq*3 + uint64(k)) }

// startSoakDgram sets the datagram load up on l; call finish on the loop
// when the load ends and check after Run returned.
func startSoakDgram(t *testing.T, l *loop.Loop) *soakDgram {
	d := &soakDgram{l: l, t: t}
	var err error
	d.echo, err = dgram.Listen(l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
		if err := c.WriteTo(data, from); err != nil {
			d.fail("churn echo: %v", err)
		}
	})
	require.NoError(t, err)
	for range soakDgramPairs {
		p := &soakDgramPair{}
		p.server, err = dgram.Listen(l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, from netip.AddrPort) {
			if err := c.WriteTo(data, from); err != nil {
				d.fail("echo: %v", err)
			}
		})
		require.NoError(t, err)
		p.client, err = dgram.Listen(l, "udp", "127.0.0.1:0", func(c *dgram.Conn, data []byte, _ netip.AddrPort) {
			d.returned(p, data)
		})
		require.NoError(t, err)
		d.pairs = append(d.pairs, p)
		d.open++
		for range soakDgramWindow {
			d.send(p)
		}
	}
	d.churn = l.NewTimer(d.churnOnce)
	require.NoError(t, d.churn.Start(soakDgramChurn, soakDgramChurn))
	return d
}

func (d *soakDgram) fail(format string, args ...any) {
	d.errs++
	d.t.Errorf("dgram soak: "+format, args...)
}

func (d *soakDgram) send(p *soakDgramPair) {
	var buf [soakDgramSize]byte
	binary.LittleEndian.PutUint64(buf[:], p.sent)
	for k := 8; k < len(buf); k++ {
		buf[k] = soakDgramByte(p.sent, k)
	}
	if err := p.client.WriteTo(buf[:], p.server.LocalAddr()); err != nil {
		d.fail("send: %v", err)
		return
	}
	p.sent++
}

// returned checks an echo: the next sequence number, or a later one when
// the kernel dropped some on the way (counted as lost, and reconciled
// with the kernel's drop counts in check).
func (d *soakDgram) returned(p *soakDgramPair, data []byte) {
	if len(data) != soakDgramSize {
		d.fail("%d-byte echo", len(data))
		return
	}
	seq := binary.LittleEndian.Uint64(data)
	for k := 8; k < len(data); k++ {
		if data[k] != soakDgramByte(seq, k) {
			d.fail("echo %d corrupt at byte %d", seq, k)
			return
		}
	}
	next := p.back + p.lost
	if seq < next || seq >= p.sent {
		d.fail("echo %d, expected %d..%d: repeated or reordered", seq, next, p.sent-1)
		return
	}
	p.lost += seq - next
	p.back++
	if !d.stopping {
		d.send(p)
		return
	}
	if p.back+p.lost == p.sent {
		d.closePair(p)
	}
}

func (d *soakDgram) closePair(p *soakDgramPair) {
	if p.done {
		return
	}
	p.done = true
	p.client.Close(nil)
	p.server.Close(nil)
	if d.open--; d.open == 0 && d.grace != nil {
		d.grace.Close(nil)
	}
}

// churnOnce opens a Conn that asks the echo server once and closes on the
// reply. While one waits the churner waits too (a loaded loop's iteration
// can outlast the period); one waiting for a second (its datagram was
// dropped) is replaced.
func (d *soakDgram) churnOnce() {
	if d.current != nil {
		if d.l.Now().Sub(d.askedAt) < time.Second {
			return
		}
		d.current.Close(nil)
		d.stale++
	}
	c, err := dgram.Listen(d.l, "udp4", "127.0.0.1:0", func(c *dgram.Conn, data []byte, _ netip.AddrPort) {
		if string(data) != "churn" {
			d.fail("churn reply %q", data)
		}
		d.replies++
		c.Close(nil)
		d.current = nil
	}, dgram.WithReadBatch(1), dgram.WithMaxPacket(64))
	if err != nil {
		d.fail("churn listen: %v", err)
		return
	}
	d.opened++
	d.current, d.askedAt = c, d.l.Now()
	if err := c.WriteTo([]byte("churn"), d.echo.LocalAddr()); err != nil {
		d.fail("churn send: %v", err)
	}
}

// finish ends the load on the loop: no new datagrams; pairs close once
// their last echo is back, or when the grace period ends.
func (d *soakDgram) finish() {
	d.stopping = true
	d.churn.Close(nil)
	if d.current != nil {
		d.current.Close(nil)
		d.current = nil
	}
	d.echo.Close(nil)
	for _, p := range d.pairs {
		if p.back+p.lost == p.sent {
			d.closePair(p)
		}
	}
	if d.open > 0 {
		d.grace = d.l.AfterFunc(soakDgramGrace, func() {
			for _, p := range d.pairs {
				if !p.done {
					p.lost += p.sent - p.back - p.lost
					d.closePair(p)
				}
			}
		})
	}
}

// check runs after the loop returned: every datagram came back or the
// kernel counted drops that account for it.
func (d *soakDgram) check(t *testing.T) {
	require.Zero(t, d.errs)
	var sent, back, lost, dropped, recvCalls, received uint64
	for _, p := range d.pairs {
		require.True(t, p.done)
		sent += p.sent
		back += p.back
		lost += p.lost
		cs, ss := p.client.Stats(), p.server.Stats()
		dropped += cs.Dropped + ss.Dropped
		recvCalls += cs.RecvCalls + ss.RecvCalls
		received += cs.Received + ss.Received
	}
	require.LessOrEqual(t, lost, dropped, "datagrams lost beyond what the kernel counted as dropped")
	require.Positive(t, d.opened)
	require.LessOrEqual(t, d.opened-d.replies, d.stale+1, "churned Conns without a reply, beyond those replaced and the one closed by finish")
	require.Positive(t, d.replies)
	t.Logf("figures: dgram: %d datagrams echoed by %d pairs (%d lost, %d dropped by the kernel), %.1f per recvmmsg; %d Conns opened and closed, %d replies, %d replaced",
		sent, len(d.pairs), lost, dropped, float64(received)/float64(max(recvCalls, 1)), d.opened, d.replies, d.stale)
	require.Equal(t, sent, back+lost)
}
