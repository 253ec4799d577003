package async

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/eventpipe/eventpipe/eventfd"
)

// ErrNilTask is returned by Post for a nil function.
var ErrNilTask = errors.New("async: nil task")

var errClosed = fmt.Errorf("async: %w", os.ErrClosed)

// Queue is a FIFO of tasks with a pollable wakeup. Post and Wake may be
// called from any goroutine; Drain from one consumer goroutine at a time.
type Queue struct {
	efd *eventfd.FD

	// pending is set by the producer that made the wakeup write and cleared
	// by the consumer after it consumed that write; while set, producers
	// skip the write.
	pending atomic.Bool
	writes  atomic.Uint64
	ran     atomic.Uint64

	// fdMu is held shared around every use of efd's descriptor number and
	// exclusively by Close, so a write racing with Close can never land on
	// a descriptor that reused the number.
	fdMu sync.RWMutex

	mu     sync.Mutex
	tasks  []func() // accepted, not yet taken by Drain
	spare  []func() // the previous batch's storage, reused to avoid allocating
	closed bool

	// batch is the slice Drain is running; next is the index of the next
	// task to run. Kept on the Queue so a panicking task leaves the rest
	// for the next Drain.
	batch     []func()
	next      int
	batchLeft atomic.Int64 // len(batch)-next, for Len from any goroutine
}

// NewQueue creates an empty queue with its own non-blocking eventfd.
func NewQueue() (*Queue, error) {
	efd, err := eventfd.New(0, eventfd.NonBlocking)
	if err != nil {
		return nil, fmt.Errorf("async: %w", err)
	}
	return &Queue{efd: efd}, nil
}

// Fd returns the descriptor that is readable while tasks wait (or a Wake is
// unconsumed). It is -1 after Close.
func (q *Queue) Fd() int { return q.efd.Fd() }

// Post appends fn to the queue and wakes the consumer unless a wakeup is
// already pending. It fails with ErrNilTask for a nil fn and with an error
// wrapping os.ErrClosed after Close. It allocates nothing beyond fn itself
// once the queue's storage has grown to its working size.
func (q *Queue) Post(fn func()) error {
	if fn == nil {
		return ErrNilTask
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errClosed
	}
	q.tasks = append(q.tasks, fn)
	q.mu.Unlock()
	q.signal()
	return nil
}

// Wake makes Fd readable without queueing a task, coalescing like Post. It
// is how a consumer is asked to look at state other than the queue.
func (q *Queue) Wake() error {
	q.mu.Lock()
	closed := q.closed
	q.mu.Unlock()
	if closed {
		return errClosed
	}
	q.signal()
	return nil
}

func (q *Queue) signal() {
	if q.pending.Load() || !q.pending.CompareAndSwap(false, true) {
		return
	}
	q.writes.Add(1)
	q.fdMu.RLock()
	// EAGAIN means the counter is already full, and so readable; any other
	// failure means the descriptor is gone, which only Close does.
	_ = q.efd.Write(1)
	q.fdMu.RUnlock()
}

// Drain runs the queued tasks on the calling goroutine, oldest first, and
// returns how many ran. Tasks posted while it runs are left for the next
// Drain (their Post has made Fd readable again), so one Drain is bounded.
//
// Drain resets the eventfd counter first, which a consumer polling Fd
// level-triggered needs. A consumer that registered Fd edge-triggered should
// call DrainEdge instead and save that system call.
//
// If a task panics, the panic propagates to the caller after the tasks not
// yet run are put back at the head of the queue and Fd is made readable, so
// the next Drain resumes where this one stopped.
func (q *Queue) Drain() (ran int) {
	// Consume the wakeup before clearing pending, and clear pending before
	// taking the batch: a producer that appended after the batch was taken
	// then sees pending clear and writes again.
	q.fdMu.RLock()
	_, _ = q.efd.Read() // EAGAIN (nothing to consume) and closed are fine
	q.fdMu.RUnlock()
	return q.DrainEdge()
}

// DrainEdge is Drain for a consumer that polls Fd edge-triggered
// (poller.EdgeTriggered): every wakeup write raises a new edge whatever the
// counter holds, so the counter need not be reset and the first task runs one
// system call sooner. The counter only grows by one per drain cycle; it would
// take centuries at millions of wakeups a second to reach its limit.
func (q *Queue) DrainEdge() (ran int) {
	q.pending.Store(false)

	if q.next < len(q.batch) {
		// A previous Drain was interrupted by a panic; its rest comes first.
		ran += q.runBatch()
	}
	q.mu.Lock()
	q.batch, q.tasks, q.spare = q.tasks, q.spare[:0], nil
	q.next = 0
	q.batchLeft.Store(int64(len(q.batch)))
	q.mu.Unlock()
	ran += q.runBatch()
	return ran
}

func (q *Queue) runBatch() (ran int) {
	finished := false
	defer func() {
		q.ran.Add(uint64(ran))
		if !finished {
			// Unwinding from a panic: make sure someone comes back, for
			// the rest of the batch and for tasks posted since the drain
			// began, whose wakeup this drain has consumed (a drain that
			// resumed a batch panics before it takes them).
			q.signal()
		}
	}()
	for q.next < len(q.batch) {
		fn := q.batch[q.next]
		q.batch[q.next] = nil // drop the reference for the collector
		q.next++
		q.batchLeft.Add(-1)
		fn()
		ran++
	}
	q.mu.Lock()
	if q.spare == nil {
		q.spare = q.batch[:0]
	}
	q.mu.Unlock()
	q.batch, q.next = nil, 0
	finished = true
	return ran
}

// Len returns the number of tasks accepted and not yet run.
func (q *Queue) Len() int {
	q.mu.Lock()
	n := len(q.tasks) + int(q.batchLeft.Load())
	q.mu.Unlock()
	return n
}

// Ran returns how many tasks have run, over all Drains.
func (q *Queue) Ran() uint64 { return q.ran.Load() }

// Wakeups returns how many eventfd writes producers have made: with
// coalescing, at most one per Drain.
func (q *Queue) Wakeups() uint64 { return q.writes.Load() }

// Close refuses further posts and releases the eventfd. Tasks accepted before
// Close remain and run on later Drains. A second Close returns an error
// wrapping os.ErrClosed.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errClosed
	}
	q.closed = true
	q.mu.Unlock()
	q.fdMu.Lock()
	defer q.fdMu.Unlock()
	if err := q.efd.Close(); err != nil {
		return fmt.Errorf("async: %w", err)
	}
	return nil
}
