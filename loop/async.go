package loop

import "sync/atomic"

// Async is a handle any goroutine can Send to, waking the loop to run its
// callback. Sends coalesce: many Sends before the callback runs produce one
// call, and a Send made after the callback started produces another.
type Async struct {
	handle
	cb      func()
	fire    func() // a.run, bound once so Send allocates nothing
	pending atomic.Bool
	dead    atomic.Bool // closed: Send is refused
}

// NewAsync creates an Async handle, active (and keeping the loop alive, unless
// unreferenced) until closed.
func (l *Loop) NewAsync(cb func()) (*Async, error) {
	if l.closed() {
		return nil, closedError("new async")
	}
	if cb == nil {
		return nil, nilError("new async")
	}
	a := &Async{cb: cb}
	a.fire = a.run
	a.init(l)
	l.track(a)
	a.setActive(true)
	l.asyncs[a] = struct{}{}
	return a, nil
}

// Send asks for the callback to run on the loop. Any goroutine may call it.
// After Close (of the handle or the loop) it returns an error wrapping
// os.ErrClosed.
func (a *Async) Send() error {
	if a.dead.Load() || a.loop.closed() {
		return errSendClosed
	}
	if a.pending.Load() || !a.pending.CompareAndSwap(false, true) {
		return nil // a run is already queued and has not started yet
	}
	if err := a.loop.queue.Post(a.fire); err != nil {
		a.pending.Store(false)
		return errSendClosed
	}
	// Counted after the post: Alive, which reads this count before the
	// queue's length, may then over-count an Async run (one extra
	// iteration) but never under-count a posted task.
	a.loop.asyncQueued.Add(1)
	return nil
}

func (a *Async) run() {
	// Clear before calling: a Send from now on must cause another run.
	a.pending.Store(false)
	a.loop.asyncQueued.Add(-1)
	if a.closing {
		return
	}
	a.cb()
}

func (a *Async) deactivate() {
	a.dead.Store(true)
	a.setActive(false)
	delete(a.loop.asyncs, a)
}

// Close stops the handle; later Sends fail, and a Send not yet delivered is
// dropped. cb (if not nil) runs on the loop's next close phase.
func (a *Async) Close(cb func()) {
	if a.closing {
		return
	}
	a.deactivate()
	a.close(cb)
}
