package loop

import (
	"errors"
	"fmt"
	"slices"

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
		if l.panicErr != nil {
			// Ending the run on a panic: the rest close next time, in
			// the same order and ahead of handles closed since.
			// A fresh slice: with nothing closed since, an append would
			// alias closingRun, and the clear below would wipe the rest.
			rest := slices.Concat(l.closingRun[i:], l.closing)
			clear(l.closingRun[i:])
			l.closing = rest
			break
		}
		l.closingRun[i] = nil
		h.closed = true
		h.runCloseHook()
		if l.panicErr != nil {
			// The hook panicked: its close callback runs next time,
			// first, as a callback not yet reached would.
			rest := slices.Concat(l.closingRun[i+1:], l.closing)
			clear(l.closingRun[i:])
			l.closing = append([]*handle{h}, rest...)
			break
		}
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
// A handle closed after the loop's Close (one that was never started, since
// Close closes every active handle) is closed at once; its close callback
// does not run.
//
// Close must not be called while the loop runs (it returns an error wrapping
// EBUSY). A second Close returns an error wrapping os.ErrClosed. If
// callbacks run by Close panic and no panic handler is set, Close finishes
// its work and then returns their *PanicErrors (joined).
func (l *Loop) Close() error {
	if l.running.Load() {
		return fmt.Errorf("loop: close: loop is running: %w", unix.EBUSY)
	}
	if !l.closed.CompareAndSwap(false, true) {
		return errClosed
	}
	l.panicErr = nil
	var panics []error

	// Tasks and completions may start handles or post more, so settle
	// until nothing is active, queued or closing.
	closeAll := func() {
		for len(l.timers) > 0 {
			l.timers[0].t.Close(nil)
		}
		for _, list := range []*hookList{&l.idle, &l.prepare, &l.check} {
			for len(list.hooks) > 0 {
				list.hooks[0].Close(nil)
			}
		}
		for _, w := range l.slots {
			if w != nil {
				w.Close(nil)
			}
		}
		for a := range l.asyncs {
			a.Close(nil)
		}
	}
	settle := func() {
		for {
			closeAll()
			l.drainQueue()
			l.runClosing()
			if l.panicErr != nil {
				// Keep going: Close finishes its work, then reports.
				panics = append(panics, l.panicErr)
				l.panicErr = nil
				continue
			}
			if l.evNext < l.evN {
				l.dispatch() // left by a run a panic ended
				continue
			}
			if l.activeHandles() == 0 && l.queue.Len() == 0 && len(l.closing) == 0 {
				return
			}
		}
	}
	settle()
	l.pool.close() // posts every remaining completion
	settle()
	qerr := l.queue.Close()
	settle() // posts accepted while the queue was closing
	l.shutDown = true
	perr := l.poller.Close()

	return errors.Join(append(panics, qerr, perr)...)
}

// activeHandles counts the started handles, referenced or not.
func (l *Loop) activeHandles() int {
	return len(l.timers) + len(l.idle.hooks) + len(l.prepare.hooks) + len(l.check.hooks) +
		len(l.byFd) + len(l.asyncs)
}
