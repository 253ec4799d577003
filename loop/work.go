package loop

import (
	"context"
	"runtime/debug"
	"sync"
)

type workState int

const (
	workQueued workState = iota
	workRunning
	workFinished  // its completion is posted
	workCanceled  // removed before it started; its completion is posted
	workAbandoned // still running when Shutdown or Close gave up on it
)

// Work is a blocking function queued to the loop's worker pool, with a done
// callback that runs on the loop.
type Work struct {
	loop    *Loop
	work    func()
	workCtx func(ctx context.Context)
	done    func(err error)
	state   workState // guarded by the pool's mutex
	err     error
	finish  func() // w.complete, bound once
	// ctx is the context of a QueueWorkContext function: it ends on
	// Cancel, Shutdown and Close, or when the work returns.
	ctx    context.Context
	cancel context.CancelFunc
}

// QueueWork runs work on a worker goroutine and then done on the loop
// goroutine, with nil, ErrCanceled if the work was cancelled before it
// started, a *PanicError if work panicked, or ErrWorkExited if it ended its
// goroutine with runtime.Goexit (as t.FailNow does): done runs whichever way
// work ends, and a worker that work took down is replaced. done may be nil.
// Queued work keeps the loop alive until done has run.
func (l *Loop) QueueWork(work func(), done func(err error)) (*Work, error) {
	if work == nil {
		return nil, nilError("queue work")
	}
	return l.queueWork(&Work{loop: l, work: work, done: done}, "queue work")
}

// QueueWorkContext is QueueWork for a function that can be told to stop:
// its ctx ends when Cancel is called (also once the work is running, though
// Cancel then still returns ErrBusy and done gets what work's return leads
// to, normally nil), when Shutdown or Close begins, and when the work has
// returned.
func (l *Loop) QueueWorkContext(work func(ctx context.Context), done func(err error)) (*Work, error) {
	if work == nil {
		return nil, nilError("queue work context")
	}
	if l.closed() {
		return nil, closedError("queue work context")
	}
	w := &Work{loop: l, workCtx: work, done: done}
	w.ctx, w.cancel = context.WithCancel(l.workCtx)
	return l.queueWork(w, "queue work context")
}

func (l *Loop) queueWork(w *Work, op string) (*Work, error) {
	if l.closed() {
		return nil, closedError(op)
	}
	w.finish = w.complete
	if err := l.pool.submit(w); err != nil {
		if w.cancel != nil {
			w.cancel()
		}
		return nil, closedError(op)
	}
	l.activeReqs++
	return w, nil
}

// Cancel removes work that has not started from the queue; done then runs on
// the loop with ErrCanceled (never inside Cancel). Once work has started,
// Cancel returns ErrBusy (and ends the context of a QueueWorkContext
// function); once it has finished, been canceled or been abandoned by
// Shutdown, an error wrapping ErrBusy that says which.
func (w *Work) Cancel() error {
	p := w.loop.pool
	p.mu.Lock()
	switch w.state {
	case workQueued:
	case workRunning:
		p.mu.Unlock()
		if w.cancel != nil {
			w.cancel()
		}
		return ErrBusy
	case workCanceled:
		p.mu.Unlock()
		return errCancelCanceled
	case workAbandoned:
		p.mu.Unlock()
		return errCancelAbandoned
	default:
		p.mu.Unlock()
		return errCancelFinished
	}
	w.state = workCanceled
	p.removeLocked(w)
	p.mu.Unlock()
	w.err = ErrCanceled
	if w.cancel != nil {
		w.cancel()
	}
	w.post()
	return nil
}

// post hands the completion to the loop through its task queue, which Close
// keeps open until every accepted work item has posted or been abandoned.
func (w *Work) post() {
	if err := w.loop.queue.Post(w.finish); err != nil {
		// Close closes the queue only after the pool has settled, so
		// this is unreachable; losing a completion silently would be
		// worse.
		panic("loop: work completion lost: " + err.Error())
	}
}

// complete runs as a task of the loop's queue. A panicking done is left to
// propagate, like a posted task's: the drain then stops and keeps the
// completions after it for the next run, instead of running on and losing
// their panics behind the first.
func (w *Work) complete() {
	w.loop.activeReqs--
	if w.done != nil {
		w.done(w.err)
	}
}

// pool is a fixed set of worker goroutines, started as work arrives, serving
// a FIFO of Work.
type pool struct {
	loop *Loop
	max  int

	mu        sync.Mutex
	cond      sync.Cond // work queued, or shutdown
	exitCond  sync.Cond // a worker exited
	queue     []*Work
	running   map[*Work]struct{}
	workers   int
	idle      int // workers waiting for work
	abandoned int // workers running abandoned work
	shutdown  bool
}

func newPool(l *Loop, workers int) *pool {
	p := &pool{loop: l, max: workers, running: make(map[*Work]struct{})}
	p.cond.L = &p.mu
	p.exitCond.L = &p.mu
	return p
}

func (p *pool) submit(w *Work) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutdown {
		return closedError("queue work")
	}
	p.queue = append(p.queue, w)
	if p.workers < p.max && p.idle < len(p.queue) {
		p.startWorkerLocked()
	}
	p.cond.Signal()
	return nil
}

func (p *pool) startWorkerLocked() {
	p.workers++
	go p.worker()
}

func (p *pool) removeLocked(w *Work) {
	for i, x := range p.queue {
		if x == w {
			copy(p.queue[i:], p.queue[i+1:])
			p.queue[len(p.queue)-1] = nil
			p.queue = p.queue[:len(p.queue)-1]
			return
		}
	}
}

func (p *pool) worker() {
	p.mu.Lock()
	for {
		for len(p.queue) == 0 && !p.shutdown {
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		if len(p.queue) == 0 {
			p.exitLocked()
			p.mu.Unlock()
			return
		}
		w := p.queue[0]
		copy(p.queue, p.queue[1:])
		p.queue[len(p.queue)-1] = nil
		p.queue = p.queue[:len(p.queue)-1]
		w.state = workRunning
		p.running[w] = struct{}{}
		p.mu.Unlock()

		p.run(w) // with the lock held again when it returns
	}
}

// run runs w and posts its completion, whichever way w ends: a return, a
// panic (recovered: it becomes done's error) or runtime.Goexit, which cannot
// be stopped: the goroutine is going, so it posts done's ErrWorkExited and
// hands its place in the pool to a new worker on the way out. It returns
// with the pool's lock held.
func (p *pool) run(w *Work) {
	returned := false
	defer func() {
		if returned {
			return
		}
		v := recover()
		err := ErrWorkExited
		if v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack(), op: "work function"}
		}
		p.mu.Lock()
		p.finishLocked(w, err)
		if v == nil {
			// Goexit goes on unwinding this goroutine past worker,
			// which it ends.
			p.exitLocked()
			if !p.shutdown {
				p.startWorkerLocked()
			}
			p.mu.Unlock()
		}
	}()
	if w.workCtx != nil {
		w.workCtx(w.ctx)
	} else {
		w.work()
	}
	returned = true
	p.mu.Lock()
	p.finishLocked(w, nil)
}

// finishLocked posts w's completion with err, unless Shutdown abandoned it.
func (p *pool) finishLocked(w *Work, err error) {
	delete(p.running, w)
	if w.cancel != nil {
		w.cancel() // release the context
	}
	if w.state == workAbandoned {
		p.abandoned--
		return
	}
	w.err = err
	w.state = workFinished
	w.post()
}

func (p *pool) exitLocked() {
	p.workers--
	p.exitCond.Broadcast()
}

// close, for Shutdown and Close: refuse new work, cancel the work not
// started (its done gets ErrCanceled) and end the contexts of running
// QueueWorkContext functions. Running work goes on and posts its completion.
func (p *pool) close() {
	p.mu.Lock()
	p.shutdown = true
	canceled := p.queue
	p.queue = nil
	for _, w := range canceled {
		w.state = workCanceled
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.loop.workCancel()
	for _, w := range canceled {
		w.err = ErrCanceled
		w.post()
	}
}

// abandon gives up on the work still running: its done never runs (the
// worker drops its completion when the function returns, and then exits,
// as the pool is shut down). It returns how many items it abandoned.
func (p *pool) abandon() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for w := range p.running {
		if w.state == workRunning {
			w.state = workAbandoned
			n++
		}
	}
	p.abandoned = n
	return n
}

// waitIdle waits for every worker not running abandoned work to exit.
func (p *pool) waitIdle() {
	p.mu.Lock()
	for p.workers > p.abandoned {
		p.exitCond.Wait()
	}
	p.mu.Unlock()
}
