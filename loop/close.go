package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
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
		l.untrack(h)
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

// CloseTimeout is how long Close waits for work still running (after ending
// its context) before it abandons it. Shutdown takes its bound from its
// context instead.
const CloseTimeout = time.Second

// Close shuts the loop down and releases everything it holds, as Shutdown
// does with a context that ends after CloseTimeout: every handle not already
// closing is closed (with no close callback; callbacks already requested
// still run, on the calling goroutine), queued work is cancelled (done gets
// ErrCanceled), every task accepted by Post runs, running work has its
// context ended and is waited for, and the epoll and eventfd descriptors
// are closed. Posts from other goroutines racing with Close either run or
// fail with os.ErrClosed; none is lost.
//
// Close never blocks for ever on a work function that does not return: after
// CloseTimeout it abandons it (its done never runs; its worker goroutine
// ends when the function returns) and returns an error wrapping
// context.DeadlineExceeded that says how many items it abandoned. The loop
// is closed all the same.
//
// A handle closed after the loop's Close (a timer made by AfterFunc and
// stopped, which the loop no longer knew) is closed at once; its close
// callback does not run.
//
// Close must not be called while the loop runs (it returns an error wrapping
// EBUSY). A second Close returns an error wrapping os.ErrClosed. If
// callbacks run by Close panic and no panic handler is set, Close finishes
// its work and then returns their *PanicErrors (joined).
func (l *Loop) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	defer cancel()
	return l.shutdown(ctx, "close")
}

// Shutdown ends the loop gracefully. Call it as Close, when no Run is in
// progress (end the Run first, by its context or Stop); any goroutine may
// call it then. It
//
//   - refuses new posts (Post and PostContext fail with os.ErrClosed; tasks
//     accepted before still run, and waiting PostContext calls return);
//   - closes every handle not already closing, with no close callback (close
//     callbacks already requested run once; close hooks run for every
//     handle);
//   - cancels queued work (done gets ErrCanceled) and ends the context of
//     running QueueWorkContext functions;
//   - runs the loop until the running work has finished and its done has
//     run, or until ctx ends (handles that tasks and done callbacks make in
//     the meantime are closed too);
//   - then closes the loop, as Close.
//
// Work still running when ctx ends is abandoned: its done never runs, its
// worker goroutine ends when the function returns, and Shutdown returns an
// error wrapping ctx.Err() that says how many items were abandoned. The loop
// is closed either way; a second Shutdown or Close is os.ErrClosed, and one
// during a Run is EBUSY. Panics of callbacks it runs are returned as for
// Close.
func (l *Loop) Shutdown(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	return l.shutdown(ctx, "shutdown")
}

func (l *Loop) shutdown(ctx context.Context, op string) error {
	for !l.state.CompareAndSwap(stateIdle, stateClosing) {
		// Read again after the failed swap: a run that was in progress
		// may have ended since, and then the swap is worth another try.
		switch l.state.Load() {
		case stateRunning:
			return busyError(op)
		case stateClosing, stateClosed:
			return opError("loop: "+op+": already closed", os.ErrClosed)
		}
	}
	l.panicErr = nil
	var panics []error
	l.queue.Seal() // PostContext waiters give up now

	// Tasks and completions may start handles or post more, so settle
	// until nothing is active, queued or closing.
	settle := func() {
		for {
			l.closeEvery()
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
	l.pool.close() // cancels queued work, ends running work's contexts

	// Wait for running work: its completion arrives through the queue. A
	// context that ends wakes the wait.
	stop := context.AfterFunc(ctx, func() { _ = l.queue.Wake() })
	var abandonErr error
	for {
		settle()
		if l.activeReqs == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			n := l.pool.abandon()
			l.activeReqs -= n
			if n > 0 {
				abandonErr = fmt.Errorf("loop: %s: %d work item(s) still running, abandoned (done will not run): %w", op, n, err)
			}
			settle() // completions posted before the abandon
			break
		}
		n, err := l.poller.Wait(l.events, -1)
		if err != nil {
			panics = append(panics, lowerError(op, err))
			break
		}
		// Only the queue can be ready: every watcher is closed.
		l.evNext, l.evN = 0, n
		l.dispatch()
	}
	stop()
	l.pool.waitIdle()
	settle()
	qerr := l.queue.Close()
	settle() // posts accepted while the queue was closing
	l.shutDown = true
	perr := l.poller.Close()
	l.state.Store(stateClosed)
	if qerr != nil {
		qerr = lowerError(op, qerr)
	}
	if perr != nil {
		perr = lowerError(op, perr)
	}
	return errors.Join(append(panics, abandonErr, qerr, perr)...)
}

// activeHandles counts the started handles, referenced or not.
func (l *Loop) activeHandles() int {
	return len(l.timers) + len(l.idle.hooks) + len(l.prepare.hooks) + len(l.check.hooks) +
		len(l.byFd) + len(l.asyncs)
}
