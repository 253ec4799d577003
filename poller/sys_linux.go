package poller

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's epoll_event carries the 64-bit data field at a different
// offset on each architecture (packed after events on amd64, aligned on
// arm64); unix.EpollEvent mirrors that layout with Fd holding the low and Pad
// the high 32 bits on both.

func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// noPwait2 is set once epoll_pwait2 (Linux 5.11) turns out to be missing:
// ENOSYS from the kernel, or EPERM from a seccomp filter that predates it (a
// valid epoll descriptor never gets EPERM from the call itself).
var noPwait2 atomic.Bool

// epoll_pwait with a nil signal mask is epoll_wait, and exists on every
// architecture (arm64 has no plain epoll_wait). Each call converts the buffer
// pointer inside its own argument list, as unsafe.Pointer's rules require.
func epollWait(epfd int, events []unix.EpollEvent, timeout time.Duration) (int, unix.Errno) {
	switch {
	case timeout == 0:
		// A raw syscall does not tell the scheduler this thread may block,
		// so a zero-timeout poll costs no P hand-off.
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		return int(n), errno
	case timeout < 0:
		n, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
		return int(n), errno
	}
	if !noPwait2.Load() {
		ts := unix.NsecToTimespec(int64(timeout))
		n, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if errno != unix.ENOSYS && errno != unix.EPERM {
			return int(n), errno
		}
		noPwait2.Store(true)
	}
	// Round up: waking before the deadline would make a timer fire late by
	// a whole extra poll.
	msec := (timeout + time.Millisecond - 1) / time.Millisecond
	if msec > 1<<31-1 {
		msec = 1<<31 - 1
	}
	n, _, errno := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	return int(n), errno
}
