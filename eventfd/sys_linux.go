package eventfd

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// read8 and write8 move the 8-byte counter through a stack variable. The
// pointer is converted to uintptr inside the call expression, which keeps the
// variable alive for the syscall without making it escape to the heap (as a
// []byte handed to unix.Read would).

func read8(fd int) (uint64, unix.Errno) {
	var v uint64
	n, _, errno := unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
	if errno != 0 {
		return 0, errno
	}
	if n != 8 {
		return 0, unix.EIO // the kernel always moves exactly 8 bytes
	}
	return v, 0
}

func write8(fd int, v uint64) unix.Errno {
	n, _, errno := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
	if errno != 0 {
		return errno
	}
	if n != 8 {
		return unix.EIO
	}
	return 0
}
