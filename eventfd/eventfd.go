package eventfd

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Flags select the counter's behaviour at creation. The descriptor is always
// close-on-exec: a wakeup object leaking into a child process is never wanted.
type Flags int

const (
	// Semaphore makes Read return 1 and decrement the counter by one,
	// instead of returning the whole counter and resetting it to zero.
	Semaphore Flags = unix.EFD_SEMAPHORE
	// NonBlocking makes Read on a zero counter, and a Write that would
	// overflow it, fail with EAGAIN instead of blocking.
	NonBlocking Flags = unix.EFD_NONBLOCK
)

// maxCounter is the largest value the kernel lets the counter hold; a single
// write of 2^64-1 is rejected with EINVAL.
const maxCounter = 1<<64 - 2

// FD is an open eventfd. Read and Write may be called from any goroutine;
// Close must not race with them, as with any raw descriptor, because the
// number could be reused by another open.
type FD struct {
	fd atomic.Int64 // -1 once closed
}

// New creates an eventfd whose counter starts at initval.
func New(initval uint, flags Flags) (*FD, error) {
	if flags&^(Semaphore|NonBlocking) != 0 {
		return nil, fmt.Errorf("eventfd: new: unknown flags %#x: %w", int(flags), unix.EINVAL)
	}
	if uint64(initval) > 1<<32-1 {
		// eventfd2 takes an unsigned int; a larger value would be truncated.
		return nil, fmt.Errorf("eventfd: new: initial value %d exceeds 2^32-1: %w", initval, unix.EINVAL)
	}
	fd, err := unix.Eventfd(initval, int(flags)|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: new: %w", os.NewSyscallError("eventfd2", err))
	}
	e := &FD{}
	e.fd.Store(int64(fd))
	return e, nil
}

// Fd returns the descriptor, for registering with a poller. It is -1 after
// Close.
func (e *FD) Fd() int { return int(e.fd.Load()) }

// Write adds n to the counter. n == 2^64-1 is EINVAL. An add that would take
// the counter past 2^64-2 fails with EAGAIN in non-blocking mode and blocks
// until a Read otherwise.
func (e *FD) Write(n uint64) error {
	fd := e.fd.Load()
	if fd < 0 {
		return errWriteClosed
	}
	if n > maxCounter {
		return errWriteInvalid
	}
	for {
		err := write8(int(fd), n)
		if err == 0 {
			return nil
		}
		if err != unix.EINTR {
			return wrapErrno("write", err)
		}
	}
}

// Read returns the counter and resets it to zero, or, in semaphore mode,
// returns 1 and decrements it. On a zero counter it fails with EAGAIN in
// non-blocking mode and blocks until a Write otherwise.
func (e *FD) Read() (uint64, error) {
	fd := e.fd.Load()
	if fd < 0 {
		return 0, errReadClosed
	}
	for {
		v, err := read8(int(fd))
		if err == 0 {
			return v, nil
		}
		if err != unix.EINTR {
			return 0, wrapErrno("read", err)
		}
	}
}

// Close releases the descriptor. A second Close returns an error wrapping
// os.ErrClosed.
func (e *FD) Close() error {
	fd := e.fd.Swap(-1)
	if fd < 0 {
		return errCloseClosed
	}
	if err := unix.Close(int(fd)); err != nil {
		return fmt.Errorf("eventfd: close: %w", os.NewSyscallError("close", err))
	}
	return nil
}

// The errors a hot caller meets routinely are built once, so that failing
// with them allocates nothing.
var (
	errReadClosed   = fmt.Errorf("eventfd: read: %w", os.ErrClosed)
	errWriteClosed  = fmt.Errorf("eventfd: write: %w", os.ErrClosed)
	errCloseClosed  = fmt.Errorf("eventfd: close: %w", os.ErrClosed)
	errReadAgain    = &os.SyscallError{Syscall: "eventfd: read", Err: unix.EAGAIN}
	errWriteAgain   = &os.SyscallError{Syscall: "eventfd: write", Err: unix.EAGAIN}
	errWriteInvalid = &os.SyscallError{Syscall: "eventfd: write", Err: unix.EINVAL}
)

func wrapErrno(op string, err unix.Errno) error {
	switch {
	case err == unix.EAGAIN && op == "read":
		return errReadAgain
	case err == unix.EAGAIN:
		return errWriteAgain
	case err == unix.EBADF:
		return fmt.Errorf("eventfd: %s: %w (%w)", op, os.ErrClosed, err)
	}
	return os.NewSyscallError("eventfd: "+op, err)
}
