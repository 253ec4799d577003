package group

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// Group is a fixed set of loops run and stopped together.
type Group struct {
	loops   []*loop.Loop
	running atomic.Bool
	closed  atomic.Bool
}

// GroupYield is the period with which a group's loops pass through the Go
// scheduler (loop.WithSchedulerYield), unless New's options set another:
// each loop runs alone on its OS thread, where a loop that never yields
// costs the runtime thread hand-offs at every sleep (15 % of an HTTP
// server's CPU, bench/RESULTS.md).
const GroupYield = 5 * time.Millisecond

// New creates n loops with opts (n <= 0: runtime.GOMAXPROCS(0) of them),
// each with loop.WithSchedulerYield(GroupYield) unless opts set another
// period. If one cannot be made, the ones made are closed and its error
// returned.
func New(n int, opts ...loop.Option) (*Group, error) {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	g := &Group{loops: make([]*loop.Loop, 0, n)}
	// Each loop is alone on its thread: it yields, unless opts say otherwise.
	opts = append([]loop.Option{loop.WithSchedulerYield(GroupYield)}, opts...)
	for range n {
		l, err := loop.New(opts...)
		if err != nil {
			for _, l := range g.loops {
				l.Close()
			}
			return nil, err // the loop's error names its option
		}
		g.loops = append(g.loops, l)
	}
	return g, nil
}

// Len is the number of loops. Any goroutine may call it.
func (g *Group) Len() int { return len(g.loops) }

// Loop returns loop i, or nil when i is out of range. Any goroutine may
// call it; what it may then do with the loop is what the loop allows
// (Post, Stop, Stats from anywhere; the rest on the loop's goroutine).
func (g *Group) Loop(i int) *loop.Loop {
	if i < 0 || i >= len(g.loops) {
		return nil
	}
	return g.loops[i]
}

// Post queues fn to run on loop i. Any goroutine may call it. An index
// out of range or a nil fn is EINVAL; otherwise the error is the loop's
// Post error (os.ErrClosed after Close, ...).
func (g *Group) Post(i int, fn func()) error {
	if i < 0 || i >= len(g.loops) {
		return fmt.Errorf("group: post: loop %d of %d: %w", i, len(g.loops), unix.EINVAL)
	}
	if fn == nil {
		return fmt.Errorf("group: post: nil function: %w", unix.EINVAL)
	}
	return g.loops[i].Post(fn)
}

// Run runs every loop on its own goroutine, locked to an OS thread, each
// as its Run does, and returns when all have returned: nil when each
// returned nil (it ran out of work, or Stop was called), otherwise the
// first error one returned, after which the others were stopped (ctx.Err()
// when ctx ended). A second Run while one is in progress is EBUSY; Run
// after Close wraps os.ErrClosed.
func (g *Group) Run(ctx context.Context) error {
	if g.closed.Load() {
		return fmt.Errorf("group: run: %w", os.ErrClosed)
	}
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("group: run: already running: %w", unix.EBUSY)
	}
	defer g.running.Store(false)
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, l := range g.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := l.Run(ctx); err != nil {
				once.Do(func() {
					first = err
					cancel() // the others return with ctx.Err()
				})
			}
		}()
	}
	wg.Wait()
	return first
}

// Stop makes every loop's current Run return after its iteration in
// progress (or its next Run return at once), so Run returns. Any goroutine
// may call it.
func (g *Group) Stop() {
	for _, l := range g.loops {
		l.Stop()
	}
}

// Close closes every loop (see loop.Close) and returns their errors
// joined. It must not be called while Run is in progress (EBUSY); a second
// Close wraps os.ErrClosed.
func (g *Group) Close() error {
	if g.running.Load() {
		return fmt.Errorf("group: close: running: %w", unix.EBUSY)
	}
	if !g.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("group: close: %w", os.ErrClosed)
	}
	var errs []error
	for _, l := range g.loops {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}
