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
type Poller struct {
	epfd atomic.Int64 // -1 once closed

	waitMu sync.Mutex
	kbuf   []unix.EpollEvent // what the kernel fills; grown to the caller's slice
}

// New creates a Poller with a close-on-exec epoll descriptor.
func New() (*Poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("poller: %w", os.NewSyscallError("epoll_create1", err))
	}
	p := &Poller{}
	p.epfd.Store(int64(fd))
	return p, nil
}

// Fd returns the epoll descriptor, itself pollable: it is readable while any
// registered descriptor is ready. It is -1 after Close.
func (p *Poller) Fd() int { return int(p.epfd.Load()) }

// Add registers fd for ev with token. A descriptor already registered is
// EEXIST; a regular file or directory is EPERM.
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
	epfd := p.epfd.Load()
	if epfd < 0 {
		return errClosed
	}
	kev := unix.EpollEvent{Events: uint32(ev)}
	setToken(&kev, token)
	if err := unix.EpollCtl(int(epfd), code, fd, &kev); err != nil {
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
// otherwise. A wait interrupted by a signal is resumed with the time left.
//
// Wait allocates only when events is longer than any slice passed before.
func (p *Poller) Wait(events []Event, timeout time.Duration) (int, error) {
	if len(events) == 0 {
		return 0, fmt.Errorf("poller: wait: empty events slice: %w", unix.EINVAL)
	}
	p.waitMu.Lock()
	defer p.waitMu.Unlock()
	epfd := p.epfd.Load()
	if epfd < 0 {
		return 0, errClosed
	}
	if cap(p.kbuf) < len(events) {
		p.kbuf = make([]unix.EpollEvent, len(events))
	}
	kbuf := p.kbuf[:len(events)]

	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		n, errno := epollWait(int(epfd), kbuf, timeout)
		if errno == unix.EINTR {
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
		for i := range n {
			events[i] = Event{Token: token(&kbuf[i]), Events: Events(kbuf[i].Events)}
		}
		return n, nil
	}
}

// Close releases the epoll descriptor. A second Close, and any later call,
// returns an error wrapping os.ErrClosed.
func (p *Poller) Close() error {
	fd := p.epfd.Swap(-1)
	if fd < 0 {
		return errClosed
	}
	if err := unix.Close(int(fd)); err != nil {
		return fmt.Errorf("poller: %w", os.NewSyscallError("close", err))
	}
	return nil
}

var errClosed = fmt.Errorf("poller: %w", os.ErrClosed)
