package loop

import (
	"fmt"
	"runtime/debug"
	"sync"
)

type workState int

const (
	workQueued workState = iota
	workRunning
	workFinished
	workCanceled
)

// Work is a blocking function queued to the loop's worker pool, with a done
// callback that runs on the loop.
type Work struct {
	loop   *Loop
	work   func()
	done   func(err error)
	state  workState // guarded by the pool's mutex
	err    error
	finish func() // w.complete, bound once
}

// QueueWork runs work on a worker goroutine and then done on the loop
// goroutine, with nil, ErrCanceled if the work was cancelled before it
// started, or a *PanicError if work panicked. done may be nil. Queued work
// keeps the loop alive until done has run.
func (l *Loop) QueueWork(work func(), done func(err error)) (*Work, error) {
	if l.closed.Load() {
		return nil, errClosed
	}
	if work == nil {
		return nil, fmt.Errorf("loop: queue work: %w", ErrNilCallback)
	}
	w := &Work{loop: l, work: work, done: done}
	w.finish = w.complete
	if err := l.pool.submit(w); err != nil {
		return nil, err
	}
	l.activeReqs++
	return w, nil
}

// Cancel removes work that has not started from the queue; done then runs on
// the loop with ErrCanceled (never inside Cancel). Once work has started or
// finished, Cancel returns ErrBusy.
func (w *Work) Cancel() error {
	p := w.loop.pool
	p.mu.Lock()
	if w.state != workQueued {
		p.mu.Unlock()
		return ErrBusy
	}
	w.state = workCanceled
	p.removeLocked(w)
	p.mu.Unlock()
	w.err = ErrCanceled
	w.post()
	return nil
}

// post hands the completion to the loop through its task queue, which Close
// keeps open until every accepted work item has posted.
func (w *Work) post() {
	if err := w.loop.queue.Post(w.finish); err != nil {
		// Close closes the queue only after the pool has drained, so this
		// is unreachable; losing a completion silently would be worse.
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

	mu       sync.Mutex
	cond     sync.Cond
	queue    []*Work
	workers  int
	idle     int // workers waiting for work
	shutdown bool
	exited   sync.WaitGroup
}

func newPool(l *Loop, workers int) *pool {
	p := &pool{loop: l, max: workers}
	p.cond.L = &p.mu
	return p
}

func (p *pool) submit(w *Work) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shutdown {
		return errClosed
	}
	p.queue = append(p.queue, w)
	if p.workers < p.max && p.idle < len(p.queue) {
		p.workers++
		p.exited.Add(1)
		go p.worker()
	}
	p.cond.Signal()
	return nil
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
	defer p.exited.Done()
	p.mu.Lock()
	for {
		for len(p.queue) == 0 && !p.shutdown {
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		if len(p.queue) == 0 {
			p.mu.Unlock()
			return
		}
		w := p.queue[0]
		copy(p.queue, p.queue[1:])
		p.queue[len(p.queue)-1] = nil
		p.queue = p.queue[:len(p.queue)-1]
		w.state = workRunning
		p.mu.Unlock()

		w.err = runWork(w.work)

		p.mu.Lock()
		w.state = workFinished
		w.post()
	}
}

// runWork runs fn on a worker; a panic there would kill the process, so it
// becomes the error done receives.
func runWork(fn func()) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	fn()
	return nil
}

// close cancels the work not started, waits for the running work and for the
// workers to exit. Every item's completion has been posted when it returns.
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
	for _, w := range canceled {
		w.err = ErrCanceled
		w.post()
	}
	p.exited.Wait()
}
