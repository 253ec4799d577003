//go:build linux

package ringbuf

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
)

// perfRelay turns the wakeups of a reader's perf events into a
// level-triggered eventfd, the descriptor PerfReader.Fd hands out.
//
// A perf event clears its readiness when it is polled (perf_poll swaps the
// ring's poll state for 0), and an epoll instance checks the readiness of
// what it contains whenever its own readiness is checked, at any depth of
// nesting. Were the perf events reachable from the descriptor a user
// watches, any readiness check that is not followed by a Consume would eat
// a wakeup: a host that embeds the user's loop polls the loop's epoll,
// which polls ours, which polls the perf events, and the loop's own wait
// then finds nothing. An eventfd has no such side effect; only Consume
// resets it.
//
// The perf events sit in an epoll instance of their own that only the Go
// runtime's netpoller watches (edge-triggered, as it watches any
// non-blocking file). Its check consumes the perf events' readiness too,
// but it reports each wakeup to the goroutine below exactly once, and keeps
// a report that arrives while the goroutine is busy until it waits again,
// so every wakeup ends in an eventfd write that follows it. The goroutine
// blocks in the netpoller between wakeups: it costs no thread and never
// spins.
type perfRelay struct {
	file  *os.File // the epoll instance over the perf events; owns the descriptor
	conn  syscall.RawConn
	ready *eventfd.FD
	done  chan struct{} // closed when the goroutine has returned
}

// startRelay creates the epoll instance and starts the goroutine; perf
// events are added afterwards, so their first wakeup already finds the
// goroutine registered.
func startRelay(ready *eventfd.FD) (*perfRelay, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking is what makes os.NewFile register the descriptor with
	// the runtime's netpoller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl(O_NONBLOCK)", err)
	}
	f := os.NewFile(uintptr(epfd), "ringbuf-perf-events")
	// Only a file the netpoller registered supports deadlines; without it
	// the goroutine could not wait.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("perf events' epoll instance not pollable by the Go runtime: %w", err)
	}
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &perfRelay{file: f, conn: conn, ready: ready, done: make(chan struct{})}
	started := make(chan error, 1)
	go r.run(started)
	if err := <-started; err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// run relays wakeups until close. RawConn.Read calls the function once at
// once, then after each readiness report for as long as it returns false;
// between calls it waits in the netpoller. A report that arrived after Read
// began and before the wait is not lost: the runtime keeps it.
func (r *perfRelay) run(started chan<- error) {
	defer close(r.done)
	first := true
	err := r.conn.Read(func(uintptr) bool {
		if first {
			first = false
			started <- nil
			return false
		}
		// EAGAIN would need 2^64-2 unread wakeups; a closed eventfd
		// cannot happen, close waits for us before it is closed.
		_ = r.ready.Write(1)
		return false
	})
	// Read returns once close has closed the file, or at once if it
	// cannot wait at all.
	if first {
		started <- fmt.Errorf("waiting for perf events through the Go runtime: %w", err)
	}
}

// add makes the goroutine relay fd's wakeups.
func (r *perfRelay) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	var err error
	if cerr := r.conn.Control(func(epfd uintptr) {
		err = unix.EpollCtl(int(epfd), unix.EPOLL_CTL_ADD, fd, &ev)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// close stops the goroutine and waits for it, so that nothing writes to the
// eventfd once close returns. Closing the file wakes the goroutine's wait
// with an error, and returns once the goroutine has left the file.
func (r *perfRelay) close() error {
	err := r.file.Close()
	<-r.done
	return err
}
