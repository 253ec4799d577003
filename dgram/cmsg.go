package dgram

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Control messages are kernel bytes: every length is checked against the
// buffer before it is used, and anything malformed ends the parse.

// cmsgAlign is the alignment of control message headers and data
// (CMSG_ALIGN): the size of a long.
const cmsgAlign = int(unsafe.Sizeof(uintptr(0)))

// cmsgSpace is the room one SO_RXQ_OVFL message takes (CMSG_SPACE(4)),
// rounded up so that a second unexpected message cannot truncate it.
const cmsgSpace = 64

func alignCmsg(n int) int { return (n + cmsgAlign - 1) &^ (cmsgAlign - 1) }

// parseDrops looks for an SO_RXQ_OVFL message in a control buffer and
// returns the socket's drop counter it carries. The kernel attaches one to
// a datagram only once the counter is non-zero; it is the counter's value
// when that datagram was queued, cumulative since the socket was made.
func parseDrops(b []byte) (drops uint32, ok bool) {
	for len(b) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(unsafe.SliceData(b)))
		if uint64(h.Len) < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(b)) {
			return drops, ok
		}
		data := b[unix.SizeofCmsghdr:h.Len]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && len(data) >= 4 {
			drops, ok = binary.NativeEndian.Uint32(data), true
		}
		next := alignCmsg(int(h.Len))
		if next <= 0 || next >= len(b) {
			return drops, ok
		}
		b = b[next:]
	}
	return drops, ok
}

// dropAccount turns the kernel's cumulative 32-bit drop counter into a
// running total: each report adds what the counter moved since the last
// one, modulo 2^32, so a counter that wraps keeps counting.
type dropAccount struct {
	last  uint32
	total uint64
}

func (d *dropAccount) observe(counter uint32) {
	d.total += uint64(counter - d.last)
	d.last = counter
}
