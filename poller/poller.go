package poller

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Poller is an epoll instance. Add, Modify and Delete may be called from any
// goroutine, also while another goroutine waits. Wait uses an internal buffer
// and is meant for one goroutine at a time; concurrent Waits are serialised.
// Close may be called from any goroutine, also during a Wait (see Close).
type Poller struct {
	epfd int // the epoll descriptor; closed once state is closed with no users

	// state is stateClosed plus stateUser per call inside the descriptor.
	// A call holds the descriptor from before its first system call to
	// after its last, so the number it uses is never closed, let alone
	// reused by another open, while it runs.
	state atomic.Uint64

	waitMu sync.Mutex
	kbuf   []unix.EpollEvent // what the kernel fills; grown to the caller's slice
}

const (
	stateClosed = 1
	stateUser   = 2
)

// New creates a Poller with a close-on-exec epoll descriptor.
func New() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: new: %w", os.NewSyscallError("epoll_create1", err))
	}
	return &Poller{epfd: fd}, nil
}

// Fd returns the epoll descriptor, itself pollable: it is readable while any
// registered descriptor is ready. It is -1 after Close.
func (p *Poller) Fd() int {
	if p.state.Load()&stateClosed != 0 {
		return -1
	}
	return p.epfd
}

// enter claims the descriptor for one call; it fails once Close has begun.
func (p *Poller) enter() bool {
	for {
		s := p.state.Load()
		if s&stateClosed != 0 {
			return false
		}
		if p.state.CompareAndSwap(s, s+stateUser) {
			return true
		}
	}
}

// leave ends a call started by enter, closing the descriptor when Close ran
// meanwhile and this was the last call inside. After stateClosed is set the
// count only falls, so exactly one party sees it reach zero.
func (p *Poller) leave() {
	if p.state.Add(^uint64(stateUser-1)) == stateClosed {
		_ = unix.Close(p.epfd)
	}
}

// checkFD refuses descriptor numbers the kernel would not see as given: it
// takes an fd argument as a 32-bit int, so 1<<32+9 would silently name
// descriptor 9.
func checkFD(fd int) error {
	if fd < 0 || fd > 1<<31-1 {
		return unix.EBADF
	}
	return nil
}

// Add registers fd for ev with token. A descriptor already registered is
// EEXIST; a regular file or directory is EPERM; a number outside
// 0..math.MaxInt32 is EBADF.
func (p *Poller) Add(fd int, ev Events, token uint64) error {
	return p.ctl("add", unix.EPOLL_CTL_ADD, fd, ev, token)
}

// Modify changes the events and token of a registered fd (ENOENT if it is not
// registered). It re-arms a OneShot registration.
func (p *Poller) Modify(fd int, ev Events, token uint64) error {
	return p.ctl("modify", unix.EPOLL_CTL_MOD, fd, ev, token)
}

// Delete removes fd from the interest set (ENOENT if it is not registered).
// Closing a descriptor removes it implicitly once no other duplicate of it is
// open.
func (p *Poller) Delete(fd int) error {
	return p.ctl("delete", unix.EPOLL_CTL_DEL, fd, 0, 0)
}

func (p *Poller) ctl(op string, code, fd int, ev Events, token uint64) error {
	if err := checkFD(fd); err != nil {
		return fmt.Errorf("poller: %s fd %d: descriptor out of range: %w", op, fd, err)
	}
	if !p.enter() {
		return fmt.Errorf("poller: %s: %w", op, os.ErrClosed)
	}
	defer p.leave()
	kev := unix.EpollEvent{Events: uint32(ev)}
	setToken(&kev, token)
	if err := unix.EpollCtl(p.epfd, code, fd, &kev); err != nil {
		if code == unix.EPOLL_CTL_DEL {
			return fmt.Errorf("poller: %s fd %d: %w", op, fd, os.NewSyscallError("epoll_ctl", err))
		}
		return fmt.Errorf("poller: %s fd %d (%v): %w", op, fd, ev, os.NewSyscallError("epoll_ctl", err))
	}
	return nil
}

// Wait blocks until at least one registered descriptor is ready or the
// timeout passes, fills events from the front and returns how many it filled.
// A negative timeout blocks indefinitely. A zero timeout only polls: it does
// not block and does not hand the goroutine's thread to the scheduler as a
// blocking system call would. Other timeouts have nanosecond resolution where
// the kernel offers epoll_pwait2, and are rounded up to a millisecond
// otherwise; a timeout longer than that millisecond interface can express
// (2^31-1 ms, about 24.8 days) is waited out in several calls, so every
// timeout up to math.MaxInt64 is honoured in full. A wait interrupted by a
// signal is resumed with the time left. A Wait that Close overtook returns
// an error wrapping os.ErrClosed.
//
// Wait allocates only when events is longer than any slice passed before.
func (p *Poller) Wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("poller: wait: empty events slice: %w", unix.EINVAL)
	}
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	if !p.enter() {
		return 0, errWaitClosed
	}
	defer p.leave()
	if cap(p.kbuf) < len(events) {
		p.kbuf = make([]unix.EpollEvent, len(events))
	}
	kbuf := p.kbuf[:len(events)]
	var deadline time.Time
	if timeout > 0 {
		// time.Time.Add saturates, so a timeout near math.MaxInt64 gives
		// a far deadline rather than one in the past.
		deadline = time.Now().Add(timeout)
	}
	for {
		n, errno, partial := epollWait(p.epfd, kbuf, timeout)
		if errno == unix.EINTR || (errno == 0 && n == 0 && partial) {
			// The descriptor is still ours (we hold it), so retrying on
			// the same number cannot wait on something reopened under it;
			// but a Close meanwhile ends the wait.
			if p.state.Load()&stateClosed != 0 {
				return 0, errWaitClosed
			}
			if timeout > 0 {
				if timeout = time.Until(deadline); timeout <= 0 {
					return 0, nil
				}
			}
			continue
		}
		if errno != 0 {
			return 0, fmt.Errorf("poller: wait: %w", os.NewSyscallError("epoll_wait", errno))
		}
		if p.state.Load()&stateClosed != 0 {
			return 0, errWaitClosed
		}
		for i := range n {
			events[i] = Event{Token: token(&kbuf[i]), Events: Events(kbuf[i].Events)}
		}
		return n, nil
	}
}

// Close releases the epoll descriptor. A second Close, and any later call,
// returns an error wrapping os.ErrClosed. epoll offers no way to interrupt
// a Wait in progress on another goroutine: that Wait goes on until an event,
// its timeout or a signal ends it, and then returns an error wrapping
// os.ErrClosed. Until it does, the descriptor stays open (the kernel keeps
// the epoll instance alive for the waiter either way), so its number cannot
// be reused under a running call.
func (p *Poller) Close() error {
	for {
		s := p.state.Load()
		if s&stateClosed != 0 {
			return errCloseClosed
		}
		if !p.state.CompareAndSwap(s, s|stateClosed) {
			continue
		}
		if s != 0 {
			return nil // the last call inside closes it on its way out
		}
		if err := unix.Close(p.epfd); err != nil {
			return fmt.Errorf("poller: close: %w", os.NewSyscallError("close", err))
		}
		return nil
	}
}

// Built once: Wait after Close is on the hot path of a loop shutting down,
// and must allocate nothing.
var (
	errWaitClosed  = fmt.Errorf("poller: wait: %w", os.ErrClosed)
	errCloseClosed = fmt.Errorf("poller: close: %w", os.ErrClosed)
)
