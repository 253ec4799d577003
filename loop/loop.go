package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/poller"
)

// The loop's life: idle (not running), running (a Run, RunOnce or RunNoWait
// in progress), closing (Close or Shutdown in progress), closed. Every
// transition is one compare-and-swap, so a Close and a Run racing from two
// goroutines cannot both proceed.
const (
	stateIdle int32 = iota
	stateRunning
	stateClosing
	stateClosed
)

// DefaultTaskBudget and DefaultTaskTime bound one iteration's drain of the
// task queue (posted tasks, async callbacks and work completions) unless
// WithTaskBudget says otherwise: at most DefaultTaskBudget tasks, and no more
// once the drain has run for DefaultTaskTime, whichever comes first. The
// count bounds a drain of cheap tasks: 1024 closures of 0.1-1 us take
// 0.1-1 ms. The time bounds one of costly tasks: at the 5 us of a task that
// does real work, the drain stops after about 200 of them. Either way a 1 ms
// timer stays on time under any flood of posts. A count alone could not do
// both: small enough for costly tasks (128), it capped cheap posts at 128
// per iteration, where the reliability soak, whose iterations are long with
// io and timers, then posted a thirteenth of what it did with 1024.
const (
	DefaultTaskBudget = 1024
	DefaultTaskTime   = time.Millisecond
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

	yieldEvery int64  // WithSchedulerYield, in ns; 0: never
	yieldBusy  int64  // one and a half of it, for a loop that never sleeps
	lastYield  int64  // loop time of the last pass through the scheduler (yield.go)
	yields     uint64 // passes made, for tests
	procs      int32  // GOMAXPROCS as of the last yield (0: not read yet)
	runSince   int64  // when the run in progress began
	yieldRetry int64  // no yield before a sleep is tried until this loop time

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

	// handles is every handle not yet closed, for Walk, Shutdown and
	// Close (see track).
	handles []registered

	budget     int           // tasks one drain runs at most
	budgetTime time.Duration // and for how long; 0: no time bound
	backlog    bool          // the last drain left tasks it was owed: poll must not block
	errFull    error

	// workCtx is the parent of every QueueWorkContext context; Shutdown
	// and Close end it.
	workCtx    context.Context
	workCancel context.CancelFunc

	idleNanos atomic.Int64 // time blocked in poll

	stopFlag atomic.Bool
	// ctxEnded holds the number of the Run whose context ended; runSeq
	// numbers the Runs and ctxRun is the one in progress (0: none, or a
	// RunOnce/RunNoWait). A context that ends as its Run returns can then
	// never stop a later run.
	ctxEnded atomic.Uint64
	runSeq   uint64
	ctxRun   uint64
	state    atomic.Int32

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
	budget       int
	queueLimit   int
	yieldEvery   time.Duration
}

// WithWorkers sets how many goroutines run QueueWork's blocking functions
// (default 4). They start on first use and end at Close.
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return opError(fmt.Sprintf("loop: WithWorkers(%d): need at least one worker", n), unix.EINVAL)
		}
		c.workers = n
		return nil
	}
}

// WithPanicHandler makes the loop recover a panicking callback, pass the
// value to fn and go on, instead of returning a *PanicError from Run. If fn
// itself panics, the loop treats that as a panic with no handler: the run
// ends with a *PanicError for the handler's panic, and nothing the run had
// not reached is lost.
func WithPanicHandler(fn func(v any)) Option {
	return func(c *config) error {
		if fn == nil {
			return nilError("WithPanicHandler")
		}
		c.panicHandler = fn
		return nil
	}
}

// WithTaskBudget sets how many queued tasks one iteration runs at most
// (posted tasks, async callbacks and work completions alike), as an exact
// count with no time bound; 0 means the default, DefaultTaskBudget tasks
// and DefaultTaskTime, and a negative n is EINVAL. Whatever the budget, an
// iteration never runs a task posted after its drain began. Tasks left over
// run in the next iteration, whose poll then does not block, after the
// timers and io that came due: posts can delay timers and io by one budget's
// worth of tasks, never starve them.
func WithTaskBudget(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return opError(fmt.Sprintf("loop: WithTaskBudget(%d): negative", n), unix.EINVAL)
		}
		c.budget = n
		return nil
	}
}

// WithQueueLimit bounds the posted tasks waiting to run: with n waiting,
// Post fails with an error wrapping unix.EAGAIN (and queues nothing) and
// PostContext waits for room. Async sends and work completions are neither
// counted nor ever refused. 0 means no limit (the default); a negative n is
// EINVAL.
func WithQueueLimit(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return opError(fmt.Sprintf("loop: WithQueueLimit(%d): negative", n), unix.EINVAL)
		}
		c.queueLimit = n
		return nil
	}
}

// WithSchedulerYield makes the loop pass through the Go scheduler
// (runtime.Gosched) about once per d of running: just before it sleeps,
// when a poll that does not wait finds nothing to do, or after d and a
// half of running without a chance to (a loop that always has work). 0,
// the default, never yields; a negative d is EINVAL. A group's loops,
// each alone on its thread, yield every GroupYield (package group).
//
// Why: a loop blocks in epoll_wait as a system call and never parks, so
// the scheduler never sees its goroutine again. The runtime's monitor
// takes a goroutine not rescheduled for 10 ms for one that runs too long
// and from then on takes its P at each system call it catches in progress,
// which costs thread hand-offs at every sleep of a busy server (see
// yield.go: on an HTTP server, 15 % of its CPU). Keep d under 10 ms for
// that. The price: a yield is a pass through the scheduler (a thread
// hand-off of its own on a locked loop), and a loop that yields no longer
// has its P taken while it sleeps, so other goroutines wait longer for a P
// when every P is held by a sleeping loop. Loops that share their Ps with
// other busy goroutines are better left at 0.
func WithSchedulerYield(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return opError(fmt.Sprintf("loop: WithSchedulerYield(%v): negative", d), unix.EINVAL)
		}
		c.yieldEvery = d
		return nil
	}
}

// New creates a loop with its epoll instance and wakeup eventfd.
func New(opts ...Option) (*Loop, error) {
	cfg := config{workers: 4}
	for i, o := range opts {
		if o == nil {
			return nil, opError(fmt.Sprintf("loop: new: option %d is nil", i), unix.EINVAL)
		}
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	budgetTime := time.Duration(0)
	if cfg.budget == 0 {
		cfg.budget, budgetTime = DefaultTaskBudget, DefaultTaskTime
	}
	p, err := poller.New()
	if err != nil {
		return nil, fmt.Errorf("loop: new: %w", err)
	}
	q, err := async.NewQueue()
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("loop: new: %w", err)
	}
	if err := q.SetLimit(cfg.queueLimit); err != nil { // checked above: cannot fail
		q.Close()
		p.Close()
		return nil, fmt.Errorf("loop: new: %w", err)
	}
	// Edge-triggered: each coalesced wakeup write is a new edge, so the
	// drain need not read the counter before running the first task.
	if err := p.Add(q.Fd(), poller.Readable|poller.EdgeTriggered, queueToken); err != nil {
		q.Close()
		p.Close()
		return nil, fmt.Errorf("loop: new: %w", err)
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
		yieldEvery:   int64(cfg.yieldEvery),
		yieldBusy:    int64(cfg.yieldEvery + cfg.yieldEvery/2),
		budget:       cfg.budget,
		budgetTime:   budgetTime,
		errFull:      opError(fmt.Sprintf("loop: post: queue full (limit %d)", cfg.queueLimit), unix.EAGAIN),
	}
	l.workCtx, l.workCancel = context.WithCancel(context.Background())
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
	// Refused before touching the run's state: a Run from a callback, or
	// one racing with Close or another Run.
	if err := l.enter("run"); err != nil {
		return err
	}
	defer l.state.Store(stateIdle)
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
func (l *Loop) RunOnce() (alive bool, err error) {
	if err := l.enter("run once"); err != nil {
		return false, err
	}
	defer l.state.Store(stateIdle)
	return l.run(modeOnce)
}

// RunNoWait runs one iteration in libuv's NOWAIT mode: it polls for io
// without blocking. alive is as for RunOnce.
func (l *Loop) RunNoWait() (alive bool, err error) {
	if err := l.enter("run nowait"); err != nil {
		return false, err
	}
	defer l.state.Store(stateIdle)
	return l.run(modeNoWait)
}

// enter moves the loop from idle to running, or says why it cannot.
func (l *Loop) enter(op string) error {
	for {
		switch l.state.Load() {
		case stateIdle:
			if l.state.CompareAndSwap(stateIdle, stateRunning) {
				return nil
			}
		case stateRunning:
			return opError("loop: "+op+": already running", unix.EBUSY)
		default:
			return closedError(op)
		}
	}
}

// closed reports whether Close or Shutdown has begun.
func (l *Loop) closed() bool { return l.state.Load() >= stateClosing }

func (l *Loop) run(mode runMode) (alive bool, err error) {
	l.panicErr = nil
	loopsRunning.Add(1)
	defer loopsRunning.Add(-1)
	l.runSince = int64(time.Since(l.base))
	if l.procs == 0 {
		l.procs = int32(runtime.GOMAXPROCS(0)) // then refreshed at each yield
	}

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
		if l.yieldEvery != 0 && l.busyYieldDue() {
			l.yield() // a loop that has had no chance to yield: see yield.go
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
	if timeout != 0 && l.yieldEvery != 0 && (l.oversubscribed() || (l.now >= l.yieldRetry && l.yieldDue())) {
		// Yield before sleeping (see yield.go), and only when there is
		// nothing to do now: on a locked loop a yield is a thread
		// hand-off, which must not delay events already waiting.
		n, err := l.poller.Wait(l.events, 0)
		if n != 0 || err != nil {
			// Busy: try again in a while, not at every iteration, which
			// would change how often producers must wake the loop. An
			// oversubscribed loop tries before every sleep all the same:
			// the other loops wait for its P while it sleeps.
			l.UpdateTime()
			l.yieldRetry = l.now + int64(yieldRetry)
			return l.dispatchBatch(n, err)
		}
		l.yield()
		l.UpdateTime()
		timeout = l.BackendTimeout() // a timer may have come due meanwhile
	}
	var start int64
	if timeout != 0 {
		start = int64(time.Since(l.base))
	}
	n, err := l.poller.Wait(l.events, timeout)
	// The wait may have been long: timers and watcher callbacks see the
	// time of wakeup, as in libuv.
	l.UpdateTime()
	if timeout != 0 {
		// As uv_metrics_idle_time: only a poll that may block counts.
		l.idleNanos.Add(l.now - start)
	}
	return l.dispatchBatch(n, err)
}

// dispatchBatch dispatches the n events a wait returned.
func (l *Loop) dispatchBatch(n int, err error) error {
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

// drainQueue runs the queued tasks that were there when it began, at most
// the task budget of them. After a panic async.Queue keeps the rest of the
// drain, with its end and budget: with a handler the drain goes on, without
// one it ends so the run can return.
func (l *Loop) drainQueue() {
	for !l.drainOnce() && l.panicErr == nil {
	}
}

// drainOnce reports whether the queue drained without a panic.
func (l *Loop) drainOnce() (finished bool) {
	defer l.catch()
	// Tasks left over have had their edge raised again by the queue; the
	// flag makes the next poll not block even for an embedder that looks
	// at BackendTimeout. It is set first so that a drain a panic ends
	// leaves it set: the rest of that drain is still owed.
	l.backlog = true
	_, l.backlog = l.queue.DrainEdgeFor(l.budget, l.budgetTime)
	return true
}

// Stop makes the current run return after the iteration in progress, or the
// next run return before its first iteration. Any goroutine may call it.
func (l *Loop) Stop() {
	l.stopFlag.Store(true)
	_ = l.queue.Wake() // after Close there is nothing to wake
}

// Alive reports whether the loop has a referenced active handle, pending
// work, a queued task or a handle still closing. It is false once the loop
// is closed.
func (l *Loop) Alive() bool {
	if l.state.Load() == stateClosed {
		return false
	}
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
// when the loop has work to do now (idle hooks, closing handles, tasks left
// over by the task budget, a stop request, or nothing keeping it alive).
func (l *Loop) BackendTimeout() time.Duration {
	if l.stopping() || (l.activeRefs == 0 && l.activeReqs == 0) || l.idle.n > 0 || len(l.closing) > 0 ||
		l.evNext < l.evN || l.backlog {
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
// tasks run in the order they were accepted, each exactly once (Shutdown
// and Close run the ones still queued). It fails with an error wrapping
// os.ErrClosed once Shutdown or Close has begun, with one wrapping
// ErrNilCallback for a nil fn, and, under WithQueueLimit, with one wrapping
// unix.EAGAIN while the limit's worth of posted tasks wait (nothing is then
// queued). It allocates nothing beyond fn, and takes no lock.
//
// A queued task keeps the loop alive only until it ran: a service that
// expects posts at any time should hold a referenced handle (an Async, say).
func (l *Loop) Post(fn func()) error {
	if fn == nil {
		return errPostNil
	}
	// Close refuses new posts from its start, so a task that re-posts
	// itself cannot keep Close draining forever. A Post that passed this
	// check just before still lands in the queue, and Close runs it.
	if l.closed() {
		return errPostClosed
	}
	if err := l.queue.PostLimited(fn); err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return l.errFull
		}
		return errPostClosed
	}
	return nil
}

// PostContext is Post that waits for room under WithQueueLimit instead of
// failing with EAGAIN: it returns nil once fn is queued, or ctx.Err() if
// ctx ends first (fn is then not queued). A waiting PostContext sleeps until
// the loop runs a posted task (it never polls), and returns an error
// wrapping os.ErrClosed when Shutdown or Close begins. Without a limit it is
// Post. Any goroutine may call it, but a callback on the loop that waits
// for room waits for ever: only the loop makes room.
func (l *Loop) PostContext(ctx context.Context, fn func()) error {
	if fn == nil {
		return errPostContextNil
	}
	if l.closed() {
		return errPostContextClosed
	}
	err := l.queue.PostContext(ctx, fn)
	if err != nil && errors.Is(err, os.ErrClosed) {
		return errPostContextClosed
	}
	return err
}

// Stats are counters of the loop's work since New.
type Stats struct {
	Iterations       uint64 // polls made
	EventsDispatched uint64 // io watcher callbacks run
	WakeupWrites     uint64 // eventfd writes that woke the loop (coalesced: at most one per drain)
	TasksRun         uint64 // posted tasks, async callbacks and work completions run
	// Queued is the tasks waiting in the queue now: posted tasks, async
	// callbacks and work completions.
	Queued int
	// IdleTime is the time spent blocked in poll, as uv_metrics_idle_time:
	// polls that could not block (work was waiting) do not count.
	IdleTime time.Duration
}

// Stats returns the counters; any goroutine may call it.
func (l *Loop) Stats() Stats {
	return Stats{
		Iterations:       l.iterations.Load(),
		EventsDispatched: l.dispatched.Load(),
		WakeupWrites:     l.queue.Wakeups(),
		TasksRun:         l.queue.Ran(),
		Queued:           l.queue.Len(),
		IdleTime:         time.Duration(l.idleNanos.Load()),
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
