package loop

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// runClosing runs the close callbacks queued so far, in the order Close was
// called. Handles closed by these callbacks wait for the next close phase.
func (l *Loop) runClosing() {
	if len(l.closing) == 0 {
		return
	}
	l.closingRun, l.closing = l.closing, l.closingRun[:0]
	for i, h := range l.closingRun {
		l.closingRun[i] = nil
		h.closed = true
		l.handles.remove(h)
		if cb := h.closeCb; cb != nil {
			h.closeCb = nil
			l.call(cb)
		}
	}
	l.closingRun = l.closingRun[:0]
}

// Close shuts the loop down and releases everything it holds: every open
// handle is closed (close callbacks still run, on the calling goroutine),
// queued work is cancelled (done gets ErrCanceled), running work is waited
// for, every task accepted by Post runs, and the epoll and eventfd
// descriptors are closed. Posts from other goroutines racing with Close
// either run or fail with os.ErrClosed; none is lost.
//
// Close must not be called while the loop runs (it returns an error wrapping
// EBUSY). A second Close returns an error wrapping os.ErrClosed. If a
// callback run by Close panics and no panic handler is set, Close finishes
// its work and then returns the first *PanicError.
func (l *Loop) Close() error {
	if l.running.Load() {
		return fmt.Errorf("loop: close: loop is running: %w", unix.EBUSY)
	}
	if !l.closed.CompareAndSwap(false, true) {
		return errClosed
	}
	l.panicErr = nil

	// Tasks and completions may start handles or post more, so settle
	// until nothing is open, queued or closing.
	closeAll := func() {
		for h := l.handles.first(); h != nil && h != &l.handles.head; {
			next := h.next
			if !h.closing {
				h.close(nil)
			}
			h = next
		}
	}
	settle := func() {
		for {
			closeAll()
			l.drainQueue()
			l.runClosing()
			if l.handles.n == 0 && l.queue.Len() == 0 && len(l.closing) == 0 {
				return
			}
		}
	}
	settle()
	l.pool.close() // posts every remaining completion
	settle()
	qerr := l.queue.Close()
	settle() // posts accepted while the queue was closing
	perr := l.poller.Close()

	if l.panicErr != nil {
		return l.panicErr
	}
	return errors.Join(qerr, perr)
}
