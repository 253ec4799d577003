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

// maxWaitMsec is the longest wait epoll_pwait's int timeout expresses, in
// milliseconds; tests lower it to exercise a wait longer than one call.
var maxWaitMsec = time.Duration(1<<31 - 1)

// epoll_pwait with a nil signal mask is epoll_wait, and exists on every
// architecture (arm64 has no plain epoll_wait). Each call converts the buffer
// pointer inside its own argument list, as unsafe.Pointer's rules require.
// partial reports a wait shorter than timeout, which the caller resumes when
// it returns nothing.
func epollWait(epfd int, events []unix.EpollEvent, timeout time.Duration) (n int, errno unix.Errno, partial bool) {
	switch {
	case timeout == 0:
		// A raw syscall does not tell the scheduler this thread may block,
		// so a zero-timeout poll costs no P hand-off.
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		return int(r), e, false
	case timeout < 0:
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), ^uintptr(0), 0, 0)
		return int(r), e, false
	}
	if !noPwait2.Load() {
		// Any positive duration fits a timespec; the kernel saturates the
		// deadline it computes from it.
		ts := unix.NsecToTimespec(int64(timeout))
		r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT2, uintptr(epfd),
			uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(unsafe.Pointer(&ts)), 0, 0)
		if e != unix.ENOSYS && e != unix.EPERM {
			return int(r), e, false
		}
		noPwait2.Store(true)
	}
	msec, partial := waitMsec(timeout)
	r, _, e := unix.Syscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(msec), 0, 0)
	return int(r), e, partial
}

// waitMsec converts a positive timeout to epoll_pwait's milliseconds. It
// rounds up, since waking before the deadline would make a timer fire late
// by a whole extra poll, without the overflow of adding a millisecond less
// a nanosecond first (which turns a timeout near math.MaxInt64 negative).
// A timeout past maxWaitMsec is cut to it and reported partial, rather than
// truncated to a shorter or an infinite wait.
func waitMsec(timeout time.Duration) (msec time.Duration, partial bool) {
	msec = timeout / time.Millisecond
	if timeout%time.Millisecond != 0 {
		msec++
	}
	if msec > maxWaitMsec {
		return maxWaitMsec, true
	}
	return msec, false
}
