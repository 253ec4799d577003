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
// soak's loop echoing a window of datagrams each. Every datagram comes back
// intact and in order, or was dropped by the kernel and counted so
// (SO_RXQ_OVFL). (Conns opened and closed under load are dgram's
// TestChurn: here they would make the soak's descriptor samples depend on
// the instant they are taken.)
const (
	soakDgramPairs  = 16
	soakDgramWindow = 8               // datagrams in flight per pair
	soakDgramSize   = 64              // bytes per datagram
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
	grace    *loop.Timer
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

// finish ends the load on the loop: no new datagrams; pairs close once
// their last echo is back, or when the grace period ends.
func (d *soakDgram) finish() {
	d.stopping = true
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
	t.Logf("figures: dgram: %d datagrams echoed by %d pairs (%d lost, %d dropped by the kernel), %.1f per recvmmsg",
		sent, len(d.pairs), lost, dropped, float64(received)/float64(max(recvCalls, 1)))
	require.Equal(t, sent, back+lost)
}
