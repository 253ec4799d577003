package dgram

import "golang.org/x/sys/unix"

// FailSends makes the next n immediate sends fail with EAGAIN, as a full
// send buffer would, and returns a function that undoes it.
func FailSends(n int) (undo func()) {
	sendOne = func(fd int, p []byte, sa *unix.RawSockaddrInet6, salen uint32) error {
		if n > 0 {
			n--
			return unix.EAGAIN
		}
		return sendto(fd, p, sa, salen)
	}
	return func() { sendOne = sendto }
}

// ParseDrops exposes the control-message parser to the fuzz target.
func ParseDrops(b []byte) (uint32, bool) { return parseDrops(b) }

// DropTotal feeds counters to a fresh drop account and returns its total.
func DropTotal(counters ...uint32) uint64 {
	var d dropAccount
	for _, v := range counters {
		d.observe(v)
	}
	return d.total
}

// WithoutIPv6 makes socket(2) refuse AF_INET6 with EAFNOSUPPORT, as on a
// host without IPv6, and returns a function that undoes it.
func WithoutIPv6() (undo func()) {
	socketSyscall = func(family, typ, proto int) (int, error) {
		if family == unix.AF_INET6 {
			return -1, unix.EAFNOSUPPORT
		}
		return unix.Socket(family, typ, proto)
	}
	return func() { socketSyscall = unix.Socket }
}
