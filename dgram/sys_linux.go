package dgram

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw syscalls of the hot paths. golang.org/x/sys's Sendto and
// Recvmsg take and return Sockaddr interfaces, which allocate; these take
// the caller's preallocated kernel structures instead.

// socketSyscall is socket(2); a variable so that a test can play a host
// without IPv6.
var socketSyscall = unix.Socket

// recvmmsg fills up to len(msgs) messages without blocking (the socket is
// non-blocking); it retries EINTR.
func recvmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	return mmsg(unix.SYS_RECVMMSG, fd, msgs)
}

// sendmmsg sends up to len(msgs) messages; it returns how many the kernel
// took, or the error of the first one when it took none.
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	return mmsg(unix.SYS_SENDMMSG, fd, msgs)
}

// mmsg makes the recvmmsg or sendmmsg call (no flags, no timeout),
// retrying EINTR.
func mmsg(trap uintptr, fd int, msgs []unix.Mmsghdr) (int, error) {
	for {
		n, _, e := unix.Syscall6(trap, uintptr(fd),
			uintptr(unsafe.Pointer(unsafe.SliceData(msgs))), uintptr(len(msgs)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// sendto sends one datagram to the address in sa (salen bytes of it).
func sendto(fd int, p []byte, sa *unix.RawSockaddrInet6, salen uint32) error {
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd),
			uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0,
			uintptr(unsafe.Pointer(sa)), uintptr(salen))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// bind binds fd to the salen bytes of sa.
func bind(fd int, sa *unix.RawSockaddrInet6, salen uint32) error {
	_, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(sa)), uintptr(salen))
	if e != 0 {
		return e
	}
	return nil
}
