package dgram

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvRounds bounds the recvmmsg calls made per readiness event, so that
// one busy socket cannot starve the loop's other handles (libuv reads 32
// datagrams per event); level-triggered readiness brings the loop back for
// the rest.
const recvRounds = 4

// initRecv preallocates everything recvmmsg needs: the message headers,
// one iovec, name and control buffer per message, and the packet slots,
// so that receiving allocates nothing.
func (c *Conn) initRecv(batch, maxPacket int) {
	c.slot = maxPacket
	c.rbuf = make([]byte, batch*maxPacket)
	c.rmsgs = make([]unix.Mmsghdr, batch)
	c.riov = make([]unix.Iovec, batch)
	c.rname = make([]unix.RawSockaddrInet6, batch)
	c.rctl = make([]byte, batch*cmsgSpace)
	for i := range c.rmsgs {
		c.riov[i].Base = &c.rbuf[i*maxPacket]
		c.riov[i].SetLen(maxPacket)
		h := &c.rmsgs[i].Hdr
		h.Iov = &c.riov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&c.rname[i]))
		h.Control = &c.rctl[i*cmsgSpace]
	}
}

// receive reads batches until the socket is empty, the round limit is
// reached or the Conn is closed by a callback.
func (c *Conn) receive() {
	for range recvRounds {
		for i := range c.rmsgs {
			h := &c.rmsgs[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.SetControllen(cmsgSpace)
			h.Flags = 0
		}
		n, err := recvmmsg(c.fd, c.rmsgs)
		if err != nil {
			if err != unix.EAGAIN {
				// An ICMP error queued on the socket, say: it
				// was reported by this call and is gone.
				c.stats.Errors++
			}
			return
		}
		if n == 0 {
			return
		}
		c.stats.RecvCalls++
		for i := range n {
			m := &c.rmsgs[i]
			if m.Hdr.Controllen > 0 {
				ctl := c.rctl[i*cmsgSpace : i*cmsgSpace+min(int(m.Hdr.Controllen), cmsgSpace)]
				if drops, ok := parseDrops(ctl); ok {
					c.drops.observe(drops)
					c.stats.Dropped = c.drops.total
				}
			}
			if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
				c.stats.Truncated++
				continue
			}
			from := getSockaddr(&c.rname[i], m.Hdr.Namelen)
			c.stats.Received++
			off := i * c.slot
			c.onPacket(c, c.rbuf[off:off+int(m.Len):off+c.slot], from)
			if c.closing {
				return
			}
		}
		if n < len(c.rmsgs) {
			return
		}
	}
}

// drainErrors reads the socket's error queue, which fills only when the
// user set IP_RECVERR or IPV6_RECVERR on it (ICMP errors for datagrams
// sent): epoll reports the socket in error while the queue holds anything,
// so a queue nobody reads would keep the loop from ever sleeping. Each
// entry is counted in Stats.Errors.
func (c *Conn) drainErrors() {
	var buf [1]byte
	var oob [256]byte
	for range 64 {
		_, _, _, _, err := unix.Recvmsg(c.fd, buf[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break // EAGAIN: empty
		}
		c.stats.Errors++
	}
	// A pending socket error holds the error condition too; reading
	// SO_ERROR clears it.
	if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		c.stats.Errors++
	}
}
