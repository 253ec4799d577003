package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/poller"
)

var (
	// ErrCanceled is what a Work's done callback receives when Cancel (or
	// Loop.Close) removed it from the queue before it started.
	ErrCanceled = errors.New("loop: work canceled")
	// ErrBusy is returned by (*Work).Cancel once the work has started.
	ErrBusy = errors.New("loop: work already started")
	// ErrNilCallback is wrapped by every call given a nil callback where one
	// is required.
	ErrNilCallback = errors.New("loop: nil callback")
)

var (
	errClosed  = fmt.Errorf("loop: %w", os.ErrClosed)
	errRunning = fmt.Errorf("loop: run: already running: %w", unix.EBUSY)
)

// queueToken is the poller token of the task queue's eventfd; watcher tokens
// use slots from 1 up.
const queueToken = 0

// eventBatch bounds how many io events one poll collects; a fuller interest
// set is served over several iterations, as level-triggered readiness
// persists.
const eventBatch = 256

type runMode int

const (
	modeDefault runMode = iota
	modeOnce
	modeNoWait
)

// Loop is an event loop. Create it with New, give it handles, then Run it.
type Loop struct {
	poller *poller.Poller
	queue  *async.Queue
	events []poller.Event
	evNext int // next event of the batch to dispatch
	evN    int // events in the batch

	base time.Time // the zero of the loop's clock
	now  int64     // cached loop time: nanoseconds since base

	timers   timerHeap
	timerSeq uint64
	ready    []timerEntry // timers due in the current pass

	slots     []*Watcher // token slot -> watcher; slot 0 is the queue
	slotGen   []uint32
	freeSlots []uint32
	byFd      map[int]*Watcher

	idle, prepare, check hookList
	hookSeq              uint64
	hookScratch          []*Hook

	asyncs     map[*Async]struct{} // open Async handles, for Close
	closing    []*handle
	closingRun []*handle
	// closeHooks holds the hooks set with SetCloseHook. A map, not a
	// field of handle, so that a Timer keeps its size: only handles that
	// are parts of bigger objects carry one.
	closeHooks map[*handle]func()

	activeRefs int // active and referenced handles
	activeReqs int // queued or running work not yet done

	// asyncQueued counts Async runs waiting in the task queue: they are
	// there on behalf of a handle, whose own ref decides liveness.
	asyncQueued atomic.Int64

	shutDown bool // Close has finished: no close phase will come

	stopFlag atomic.Bool
	// ctxEnded holds the number of the Run whose context ended; runSeq
	// numbers the Runs and ctxRun is the one in progress (0: none, or a
	// RunOnce/RunNoWait). A context that ends as its Run returns can then
	// never stop a later run.
	ctxEnded atomic.Uint64
	runSeq   uint64
	ctxRun   uint64
	running  atomic.Bool
	closed   atomic.Bool

	panicHandler func(v any)
	panicErr     *PanicError

	pool *pool

	iterations atomic.Uint64
	dispatched atomic.Uint64
}

// Option configures a Loop at New.
type Option func(*config) error

type config struct {
	workers      int
	panicHandler func(v any)
}

// WithWorkers sets how many goroutines run QueueWork's blocking functions
// (default 4). They start on first use and end at Close.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("loop: WithWorkers(%d): need at least one worker: %w", n, unix.EINVAL)
		}
		c.workers = n
		return nil
	}
}

// WithPanicHandler makes the loop recover a panicking callback, pass the
// value to fn and go on, instead of returning a *PanicError from Run.
func WithPanicHandler(fn func(v any)) Option {
	return func(c *config) error {
		if fn == nil {
			return fmt.Errorf("loop: WithPanicHandler: %w", ErrNilCallback)
		}
		c.panicHandler = fn
		return nil
	}
}

// New creates a loop with its epoll instance and wakeup eventfd.
func New(opts ...Option) (*Loop, error) {
	cfg := config{workers: 4}
	for i, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("loop: option %d is nil: %w", i, unix.EINVAL)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	p, err := poller.New()
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	q, err := async.NewQueue()
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("loop: %w", err)
	}
	// Edge-triggered: each coalesced wakeup write is a new edge, so the
	// drain need not read the counter before running the first task.
	if err := p.Add(q.Fd(), poller.Readable|poller.EdgeTriggered, queueToken); err != nil {
		q.Close()
		p.Close()
		return nil, fmt.Errorf("loop: %w", err)
	}
	l := &Loop{
		poller:       p,
		queue:        q,
		events:       make([]poller.Event, eventBatch),
		base:         time.Now(),
		slots:        []*Watcher{nil},
		slotGen:      []uint32{0},
		byFd:         make(map[int]*Watcher),
		asyncs:       make(map[*Async]struct{}),
		idle:         hookList{name: "idle"},
		prepare:      hookList{name: "prepare"},
		check:        hookList{name: "check"},
		panicHandler: cfg.panicHandler,
	}
	l.pool = newPool(l, cfg.workers)
	return l, nil
}

// Run runs the loop in libuv's DEFAULT mode: until no referenced active
// handle, pending work, queued task or closing handle remains (then it
// returns nil), until Stop (nil), or until ctx ends (ctx.Err()). A callback
// that panics with no panic handler set ends the run with a *PanicError.
func (l *Loop) Run(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.running.Load() {
		// A Run from a callback: refuse before touching the run's state.
		return errRunning
	}
	l.runSeq++
	seq := l.runSeq
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			l.ctxEnded.Store(seq)
			_ = l.queue.Wake()
		})
		defer stop()
	}
	l.ctxRun = seq
	_, err := l.run(modeDefault)
	l.ctxRun = 0
	if err == nil && l.ctxEnded.Load() == seq {
		err = ctx.Err()
	}
	return err
}

// RunOnce runs one iteration in libuv's ONCE mode: it blocks for io at most
// once (not at all if nothing could wake it). alive reports whether
// referenced handles or requests remain, as uv_run's non-zero return does.
func (l *Loop) RunOnce() (alive bool, err error) { return l.run(modeOnce) }

// RunNoWait runs one iteration in libuv's NOWAIT mode: it polls for io
// without blocking. alive is as for RunOnce.
func (l *Loop) RunNoWait() (alive bool, err error) { return l.run(modeNoWait) }

func (l *Loop) run(mode runMode) (alive bool, err error) {
	if l.closed.Load() {
		return false, errClosed
	}
	if !l.running.CompareAndSwap(false, true) {
		return false, errRunning
	}
	defer l.running.Store(false)
	l.panicErr = nil

	alive = l.Alive()
	if !alive {
		l.UpdateTime()
	}
	if mode == modeDefault && alive && !l.stopping() {
		l.UpdateTime()
		l.runTimers()
	}
	// A panic (with no handler) ends the run at once; every phase leaves
	// what it had not reached yet in place for the next run.
	for alive && !l.stopping() && l.panicErr == nil {
		canSleep := l.idle.n == 0
		if l.runHooks(&l.idle); l.panicErr != nil {
			break
		}
		if l.runHooks(&l.prepare); l.panicErr != nil {
			break
		}
		timeout := time.Duration(0)
		if (mode == modeOnce && canSleep) || mode == modeDefault {
			timeout = l.BackendTimeout()
		}
		if err := l.poll(timeout); err != nil {
			return l.Alive(), err
		}
		if l.panicErr != nil {
			break
		}
		if l.runHooks(&l.check); l.panicErr != nil {
			break
		}
		if l.runClosing(); l.panicErr != nil {
			break
		}
		l.UpdateTime()
		if l.runTimers(); l.panicErr != nil {
			break
		}
		alive = l.Alive()
		if mode != modeDefault {
			break
		}
	}
	l.stopFlag.Store(false)
	if l.panicErr != nil {
		return l.Alive(), l.panicErr
	}
	return alive, nil
}

func (l *Loop) stopping() bool {
	return l.stopFlag.Load() || (l.ctxRun != 0 && l.ctxEnded.Load() == l.ctxRun)
}

// poll waits for io up to timeout and dispatches what arrived: watcher
// callbacks, and the task queue (posted tasks, async sends, work results).
// Events left over by a run that a panic ended are dispatched first, in
// place of a wait.
func (l *Loop) poll(timeout time.Duration) error {
	l.iterations.Add(1)
	if l.evNext < l.evN {
		l.dispatch()
		return nil
	}
	n, err := l.poller.Wait(l.events, timeout)
	// The wait may have been long: timers and watcher callbacks see the
	// time of wakeup, as in libuv.
	l.UpdateTime()
	if err != nil {
		return err
	}
	l.evNext, l.evN = 0, n
	l.dispatch()
	return nil
}

func (l *Loop) dispatch() {
	for l.evNext < l.evN && l.panicErr == nil {
		ev := l.events[l.evNext]
		l.evNext++
		if ev.Token == queueToken {
			l.drainQueue()
			continue
		}
		slot := uint32(ev.Token)
		if int(slot) >= len(l.slots) {
			continue
		}
		w := l.slots[slot]
		// A watcher stopped earlier in this batch freed its slot, and a
		// new watcher on the slot has a new generation: either way the
		// event belongs to a registration that no longer exists.
		if w == nil || w.token != ev.Token {
			continue
		}
		l.dispatched.Add(1)
		l.callIO(w.cb, ev.Events)
	}
}

// drainQueue runs the posted tasks. After a panic async.Queue keeps the rest
// of the batch: with a handler the drain goes on, without one it ends so the
// run can return.
func (l *Loop) drainQueue() {
	for !l.drainOnce() && l.panicErr == nil {
	}
}

// drainOnce reports whether the queue drained without a panic.
func (l *Loop) drainOnce() (finished bool) {
	defer l.catch()
	l.queue.DrainEdge()
	return true
}

// Stop makes the current run return after the iteration in progress, or the
// next run return before its first iteration. Any goroutine may call it.
func (l *Loop) Stop() {
	l.stopFlag.Store(true)
	_ = l.queue.Wake() // after Close there is nothing to wake
}

// Alive reports whether the loop has a referenced active handle, pending
// work, a queued task or a handle still closing.
func (l *Loop) Alive() bool {
	if l.activeRefs > 0 || l.activeReqs > 0 || len(l.closing) > 0 {
		return true
	}
	// Read the Async count first, and Send counts after posting: a Send
	// racing with these reads then errs on the side of one more iteration,
	// never of a posted task left behind.
	asyncRuns := int(l.asyncQueued.Load())
	return l.queue.Len() > asyncRuns
}

// Now returns the loop time, cached at the start of the iteration so every
// callback of one pass sees the same instant. It is monotonic.
func (l *Loop) Now() time.Time { return l.base.Add(time.Duration(l.now)) }

// UpdateTime refreshes the cached loop time.
func (l *Loop) UpdateTime() { l.now = int64(time.Since(l.base)) }

// Fd returns the loop's epoll descriptor, which is readable while the loop
// has io or tasks to handle. With BackendTimeout it lets another poller drive
// the loop: wait for Fd to be readable or BackendTimeout to pass, then call
// RunNoWait.
func (l *Loop) Fd() int { return l.poller.Fd() }

// BackendTimeout is how long the next poll would block: -1 for no limit, 0
// when the loop has work to do now (idle hooks, closing handles, a stop
// request, or nothing keeping it alive).
func (l *Loop) BackendTimeout() time.Duration {
	if l.stopping() || (l.activeRefs == 0 && l.activeReqs == 0) || l.idle.n > 0 || len(l.closing) > 0 ||
		l.evNext < l.evN {
		return 0
	}
	if len(l.timers) == 0 {
		return -1
	}
	if d := l.timers[0].due - l.now; d > 0 {
		return time.Duration(d)
	}
	return 0
}

// Post queues fn to run on the loop goroutine. Any goroutine may call it;
// tasks run in the order they were accepted, each exactly once (Close runs
// the ones still queued). It fails with an error wrapping os.ErrClosed after
// Close and with ErrNilCallback for a nil fn. It allocates nothing beyond fn.
//
// A queued task keeps the loop alive only until it ran: a service that
// expects posts at any time should hold a referenced handle (an Async, say).
func (l *Loop) Post(fn func()) error {
	if fn == nil {
		return fmt.Errorf("loop: post: %w", ErrNilCallback)
	}
	// Close refuses new posts from its start, so a task that re-posts
	// itself cannot keep Close draining forever. A Post that passed this
	// check just before still lands in the queue, and Close runs it.
	if l.closed.Load() {
		return errClosed
	}
	if err := l.queue.Post(fn); err != nil {
		return errClosed
	}
	return nil
}

// Stats are counters of the loop's work since New.
type Stats struct {
	Iterations       uint64 // polls made
	EventsDispatched uint64 // io watcher callbacks run
	WakeupWrites     uint64 // eventfd writes that woke the loop (coalesced: at most one per drain)
	TasksRun         uint64 // posted tasks, async callbacks and work completions run
}

// Stats returns the counters; any goroutine may call it.
func (l *Loop) Stats() Stats {
	return Stats{
		Iterations:       l.iterations.Load(),
		EventsDispatched: l.dispatched.Load(),
		WakeupWrites:     l.queue.Wakeups(),
		TasksRun:         l.queue.Ran(),
	}
}

// adjust keeps activeRefs in step when a handle's active-and-referenced state
// changes from before to after.
func (l *Loop) adjust(before, after bool) {
	switch {
	case before && !after:
		l.activeRefs--
	case !before && after:
		l.activeRefs++
	}
}
