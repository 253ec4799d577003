package dgram

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

// sendOne is the immediate send; tests replace it to make the kernel's
// send buffer look full, which loopback never is (its transmit path frees
// a datagram's send-buffer charge before sendto returns).
var sendOne = sendto

// queued is one datagram waiting for room in the kernel's send buffer.
type queued struct {
	buf []byte
	to  netip.AddrPort
}

// sendQueue holds the datagrams WriteTo could not send at once, in order,
// and the preallocated sendmmsg arguments that flush them in batches.
type sendQueue struct {
	q         []queued
	head      int
	bytes     int
	maxQueued int
	spare     [][]byte // buffers of sent datagrams, reused by later copies
	smsgs     []unix.Mmsghdr
	siov      []unix.Iovec
	sname     []unix.RawSockaddrInet6
}

func (c *Conn) initSend(batch, maxQueued int) {
	c.maxQueued = maxQueued
	c.smsgs = make([]unix.Mmsghdr, batch)
	c.siov = make([]unix.Iovec, batch)
	c.sname = make([]unix.RawSockaddrInet6, batch)
	for i := range c.smsgs {
		h := &c.smsgs[i].Hdr
		h.Iov = &c.siov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&c.sname[i]))
	}
}

// Buffered is the number of bytes waiting in the send queue.
func (c *Conn) Buffered() int { return c.bytes }

// WriteTo sends p as one datagram to to. With the send queue empty it goes
// to the kernel at once; if the kernel's send buffer is full, p is copied
// into the send queue, flushed with sendmmsg when the socket is writable,
// and p may be reused as soon as WriteTo returns. Past WithMaxQueued bytes
// queued it fails with an error wrapping unix.ENOBUFS and queues nothing.
// A kernel error (EMSGSIZE, EACCES for a broadcast without SO_BROADCAST,
// ...) is returned wrapped; an IPv4 destination on an IPv6-only socket is
// refused by the kernel, and an IPv6 one on an IPv4 socket is
// EAFNOSUPPORT. After Close it wraps os.ErrClosed.
func (c *Conn) WriteTo(p []byte, to netip.AddrPort) error {
	if c.closing || c.w.IsClosing() {
		return errClosed("write to " + to.String())
	}
	n, err := putSockaddr(&c.wname, c.family, to)
	if err != nil {
		return fmt.Errorf("dgram: write to %s: %w", to, err)
	}
	if len(c.q) == c.head {
		err := sendOne(c.fd, p, &c.wname, n)
		if err == nil {
			c.stats.Sent++
			c.stats.SendCalls++
			return nil
		}
		if err != unix.EAGAIN {
			return fmt.Errorf("dgram: write to %s: %w", to, err)
		}
	}
	// Counting each datagram as at least one byte bounds empty ones too.
	if c.bytes+len(p) > c.maxQueued || len(c.q)-c.head >= c.maxQueued {
		return fmt.Errorf("dgram: write to %s: send queue full (%d of %d bytes): %w", to, c.bytes, c.maxQueued, unix.ENOBUFS)
	}
	if len(c.q) == c.head {
		if err := c.w.Modify(poller.Readable | poller.Writable); err != nil {
			return fmt.Errorf("dgram: write to %s: %w", to, err)
		}
	}
	var buf []byte
	if k := len(c.spare); k > 0 && cap(c.spare[k-1]) >= len(p) {
		buf, c.spare = c.spare[k-1][:len(p)], c.spare[:k-1]
	} else {
		buf = make([]byte, len(p))
	}
	copy(buf, p)
	c.q = append(c.q, queued{buf: buf, to: to})
	c.bytes += len(p)
	return nil
}

// flush sends queued datagrams with sendmmsg until the kernel's buffer is
// full again or the queue is empty; then it stops watching for
// writability and runs OnDrain.
func (c *Conn) flush() {
	if c.head == len(c.q) {
		return
	}
	for c.head < len(c.q) {
		batch := min(len(c.q)-c.head, len(c.smsgs))
		for i := range batch {
			e := &c.q[c.head+i]
			if len(e.buf) > 0 {
				c.siov[i].Base = &e.buf[0]
			} else {
				c.siov[i].Base = nil
			}
			c.siov[i].SetLen(len(e.buf))
			n, err := putSockaddr(&c.sname[i], c.family, e.to)
			if err != nil {
				n = 0 // checked by WriteTo; cannot happen
			}
			c.smsgs[i].Hdr.Namelen = n
		}
		sent, err := sendmmsg(c.fd, c.smsgs[:batch])
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			// The head datagram was refused: drop it, go on.
			c.stats.Errors++
			sent = 1
		} else {
			c.stats.SendCalls++
			c.stats.Sent += uint64(sent)
		}
		c.pop(sent)
	}
	c.q, c.head = c.q[:0], 0
	if err := c.w.Modify(poller.Readable); err != nil {
		c.stats.Errors++
	}
	if c.onDrain != nil {
		c.onDrain(c)
	}
}

// pop removes n datagrams from the head, keeping a few buffers for reuse.
func (c *Conn) pop(n int) {
	for i := range n {
		e := &c.q[c.head+i]
		c.bytes -= len(e.buf)
		if len(c.spare) < len(c.smsgs) {
			c.spare = append(c.spare, e.buf)
		}
		*e = queued{}
	}
	c.head += n
	if c.head >= 256 && 2*c.head >= len(c.q) {
		// Slide the rest down so that a queue that never quite
		// empties does not grow its slice without bound.
		k := copy(c.q, c.q[c.head:])
		clear(c.q[k:])
		c.q, c.head = c.q[:k], 0
	}
}

// dropQueue forgets the queue on Close.
func (c *Conn) dropQueue() {
	clear(c.q)
	c.q, c.head, c.bytes, c.spare = nil, 0, 0, nil
}
