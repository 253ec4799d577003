package async_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/poller"
)

// waitGuard bounds how long a test waits for something that must happen; it
// is not a timing assertion.
const waitGuard = 5 * time.Second

// A budgeted drain runs at most its budget, says more remain, and raises a
// fresh edge so an edge-triggered consumer comes back for them.
func TestDrainEdgeNBudget(t *testing.T) {
	q := newQueue(t)
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Add(q.Fd(), poller.Readable|poller.EdgeTriggered, 0))
	events := make([]poller.Event, 1)

	var got []int
	for i := range 10 {
		require.NoError(t, q.Post(func() { got = append(got, i) }))
	}
	n, err := p.Wait(events, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	ran, more := q.DrainEdgeN(4)
	require.Equal(t, 4, ran)
	require.True(t, more)
	require.Equal(t, 6, q.Len())
	n, err = p.Wait(events, 0)
	require.NoError(t, err)
	require.Equal(t, 1, n, "a fresh edge for the tasks left")

	ran, more = q.DrainEdgeN(4)
	require.Equal(t, 4, ran)
	require.True(t, more)
	ran, more = q.DrainEdgeN(4)
	require.Equal(t, 2, ran)
	require.False(t, more)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, got)
	_, _ = p.Wait(events, 0) // the edge of the second budgeted drain
	n, err = p.Wait(events, 0)
	require.NoError(t, err)
	require.Zero(t, n, "no edge once the queue is empty")
}

// A drain never runs a task accepted after it began, even one posted by a
// task of the drain itself, nor does the drain that finishes it after a
// panic.
func TestDrainNeverRunsTasksPostedAfterItBegan(t *testing.T) {
	q := newQueue(t)
	var got []string
	require.NoError(t, q.Post(func() {
		got = append(got, "a")
		require.NoError(t, q.Post(func() { got = append(got, "late1") }))
	}))
	require.NoError(t, q.Post(func() {
		got = append(got, "b")
		panic("boom")
	}))
	require.NoError(t, q.Post(func() {
		got = append(got, "c")
		require.NoError(t, q.Post(func() { got = append(got, "late2") }))
	}))
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		q.DrainEdge()
	}()
	require.Equal(t, []string{"a", "b"}, got)
	require.Equal(t, 1, q.DrainEdge(), "the finishing drain runs c only")
	require.Equal(t, []string{"a", "b", "c"}, got)
	require.Equal(t, 2, q.DrainEdge())
	require.Equal(t, []string{"a", "b", "c", "late1", "late2"}, got)
}

// The budget of a drain a panic interrupted carries over to the drain that
// finishes it.
func TestDrainBudgetSurvivesPanic(t *testing.T) {
	q := newQueue(t)
	ran := 0
	require.NoError(t, q.Post(func() { ran++; panic("boom") }))
	for range 5 {
		require.NoError(t, q.Post(func() { ran++ }))
	}
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		q.DrainEdgeN(3)
	}()
	n, more := q.DrainEdgeN(100)
	require.Equal(t, 2, n, "3 of the budget: the panicking task and two more")
	require.True(t, more)
	require.Equal(t, 3, ran)
	n, more = q.DrainEdgeN(0)
	require.Equal(t, 3, n)
	require.False(t, more)
}

// With a limit of n, the n+1st waiting limited task is refused with EAGAIN
// and nothing is lost; Post is never refused nor counted.
func TestPostLimited(t *testing.T) {
	q := newQueue(t)
	require.NoError(t, q.SetLimit(1000))
	ran := 0
	for range 1000 {
		require.NoError(t, q.PostLimited(func() { ran++ }))
	}
	require.Equal(t, 1000, q.Limited())
	err := q.PostLimited(func() { ran += 1000 })
	require.ErrorIs(t, err, unix.EAGAIN)
	require.EqualError(t, err, "async: post limited: queue full (limit 1000)")
	for range 10 {
		require.NoError(t, q.Post(func() { ran++ }), "Post is never refused")
	}
	require.Equal(t, 1000, q.Limited(), "Post is not counted")
	require.Equal(t, 1010, q.Len())

	n, _ := q.DrainEdgeN(1)
	require.Equal(t, 1, n)
	require.Equal(t, 999, q.Limited())
	require.NoError(t, q.PostLimited(func() { ran++ }), "room again")
	require.ErrorIs(t, q.PostLimited(func() {}), unix.EAGAIN)
	q.Drain()
	require.Equal(t, 1011, ran, "every accepted task ran once, no refused one")
	require.Zero(t, q.Limited())
}

func TestSetLimitErrors(t *testing.T) {
	q := newQueue(t)
	err := q.SetLimit(-1)
	require.ErrorIs(t, err, unix.EINVAL)
	require.EqualError(t, err, "async: set limit -1: negative")
	require.NoError(t, q.SetLimit(0))
	require.NoError(t, q.SetLimit(2))
	require.NoError(t, q.PostLimited(func() {}))
	err = q.SetLimit(3)
	require.ErrorIs(t, err, unix.EBUSY)
	require.EqualError(t, err, "async: set limit: limited tasks already posted")
	q.Drain()
}

// Without a limit, PostLimited is Post.
func TestPostLimitedWithoutLimit(t *testing.T) {
	q := newQueue(t)
	for range 3 * async.SegSize {
		require.NoError(t, q.PostLimited(func() {}))
	}
	require.Zero(t, q.Limited())
	require.Equal(t, 3*async.SegSize, q.Drain())
}

// PostContext waits for room without polling: it returns once the consumer
// ran a limited task, and ctx.Err() when ctx ends first.
func TestPostContextWaitsForRoom(t *testing.T) {
	q := newQueue(t)
	require.NoError(t, q.SetLimit(2))
	var order []int
	require.NoError(t, q.PostLimited(func() { order = append(order, 1) }))
	require.NoError(t, q.PostLimited(func() { order = append(order, 2) }))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, q.PostContext(ctx, func() { order = append(order, -1) }), context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() { done <- q.PostContext(context.Background(), func() { order = append(order, 3) }) }()
	select {
	case err := <-done:
		t.Fatalf("PostContext returned %v with the queue full", err)
	case <-time.After(20 * time.Millisecond):
	}
	n, _ := q.DrainEdgeN(1) // room for one
	require.Equal(t, 1, n)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitGuard):
		t.Fatal("PostContext was not woken by the room made")
	}
	q.Drain()
	require.Equal(t, []int{1, 2, 3}, order)
}

// Seal and Close wake waiting PostContext calls with os.ErrClosed; after
// Seal, Post still queues.
func TestSealAndCloseWakeWaiters(t *testing.T) {
	for _, how := range []string{"seal", "close"} {
		t.Run(how, func(t *testing.T) {
			q, err := async.NewQueue()
			require.NoError(t, err)
			require.NoError(t, q.SetLimit(1))
			require.NoError(t, q.PostLimited(func() {}))
			const waiters = 4
			errs := make(chan error, waiters)
			var wg sync.WaitGroup
			for range waiters {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- q.PostContext(context.Background(), func() {})
				}()
			}
			time.Sleep(10 * time.Millisecond) // let them wait (either way they must end)
			if how == "seal" {
				q.Seal()
			} else {
				require.NoError(t, q.Close())
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.ErrorIs(t, err, os.ErrClosed)
			}
			if how == "seal" {
				require.ErrorIs(t, q.PostLimited(func() {}), os.ErrClosed)
				require.NoError(t, q.Post(func() {}), "Post still queues after Seal")
				require.Equal(t, 2, q.Drain())
				require.NoError(t, q.Close())
			}
		})
	}
}

// Many producers through PostContext against a small limit: every task runs
// exactly once, in order per producer, and the limit is never exceeded.
func TestPostContextManyProducers(t *testing.T) {
	q := newQueue(t)
	const limit, producers, each = 16, 4, 2000
	require.NoError(t, q.SetLimit(limit))
	next := make([]int, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := q.PostContext(context.Background(), func() {
					if next[p] != i {
						panic("out of order")
					}
					next[p]++
				}); err != nil {
					t.Errorf("PostContext: %v", err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	defer func() { _ = q.Close(); <-done }() // a failing test still waits for its producers
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Add(q.Fd(), poller.Readable|poller.EdgeTriggered, 0))
	events := make([]poller.Event, 1)
	deadline := time.Now().Add(waitGuard)
	for {
		// Len, not Limited: the counter may read above the limit while
		// refused posts undo their add; the tasks queued never do.
		if n := q.Len(); n > limit {
			t.Fatalf("%d limited tasks waiting, limit %d", n, limit)
		}
		_, err := p.Wait(events, 10*time.Millisecond)
		require.NoError(t, err)
		q.DrainEdgeN(5)
		select {
		case <-done:
			q.Drain()
			for i := range producers {
				require.Equal(t, each, next[i])
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("producers did not finish")
		}
	}
}

// The text of every error the package returns names the package and the
// operation once, and errors.Is sees what it wraps.
func TestErrorText(t *testing.T) {
	closed, err := async.NewQueue()
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	sealed := newQueue(t)
	sealed.Seal()
	full := newQueue(t)
	require.NoError(t, full.SetLimit(1))
	require.NoError(t, full.PostLimited(func() {}))
	t.Cleanup(func() { full.Drain() })
	open := newQueue(t)

	for _, c := range []struct {
		err  error
		text string
		is   error
	}{
		{open.Post(nil), "async: post: nil task", async.ErrNilTask},
		{open.PostLimited(nil), "async: post limited: nil task", async.ErrNilTask},
		{open.PostContext(context.Background(), nil), "async: post context: nil task", async.ErrNilTask},
		{closed.Post(func() {}), "async: post: closed", os.ErrClosed},
		{closed.PostLimited(func() {}), "async: post limited: closed", os.ErrClosed},
		{closed.PostContext(context.Background(), func() {}), "async: post limited: closed", os.ErrClosed},
		{sealed.PostLimited(func() {}), "async: post limited: sealed", os.ErrClosed},
		{full.PostLimited(func() {}), "async: post limited: queue full (limit 1)", unix.EAGAIN},
		{closed.Wake(), "async: wake: closed", os.ErrClosed},
		{closed.Close(), "async: close: already closed", os.ErrClosed},
		{closed.SetLimit(1), "async: set limit: closed", os.ErrClosed},
		{open.SetLimit(-2), "async: set limit -2: negative", unix.EINVAL},
	} {
		require.EqualError(t, c.err, c.text)
		require.True(t, errors.Is(c.err, c.is), "%q is not %v", c.text, c.is)
	}
}

// Posting under a limit allocates nothing beyond the closure either.
func TestPostLimitedAllocatesNothing(t *testing.T) {
	q := newQueue(t)
	require.NoError(t, q.SetLimit(1<<20))
	fn := func() {}
	allocs := testing.AllocsPerRun(1000, func() {
		for range 64 {
			_ = q.PostLimited(fn)
		}
		q.DrainEdgeN(16)
		q.Drain()
	})
	require.Zero(t, allocs)
}

// A budget that a panic exhausted stays exhausted for the drain that
// finishes it, even one asked for no bound.
func TestExhaustedBudgetSurvivesPanic(t *testing.T) {
	q := newQueue(t)
	ran := 0
	require.NoError(t, q.Post(func() { ran++ }))
	require.NoError(t, q.Post(func() { ran++; panic("boom") }))
	require.NoError(t, q.Post(func() { ran++ }))
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		q.DrainEdgeN(2)
	}()
	require.Equal(t, 2, ran)
	n, more := q.DrainEdgeN(0)
	require.Zero(t, n, "the interrupted drain had no budget left")
	require.True(t, more)
	n, more = q.DrainEdgeN(0)
	require.Equal(t, 1, n)
	require.False(t, more)
}

// A timed drain stops once its time is up, checking the clock every
// sliceCheck tasks, and says more remain; an untimed one runs its count.
func TestDrainEdgeForStopsOnTime(t *testing.T) {
	q := newQueue(t)
	ran := 0
	for range 200 {
		require.NoError(t, q.Post(func() {
			ran++
			time.Sleep(100 * time.Microsecond)
		}))
	}
	n, more := q.DrainEdgeFor(1000, time.Millisecond)
	require.True(t, more)
	require.GreaterOrEqual(t, n, 16, "at least one clock period of tasks")
	require.Less(t, n, 200, "the time bound stopped it")
	require.Equal(t, n, ran)
	t.Logf("figures: %d tasks of 100us in a 1 ms drain", n)

	n, more = q.DrainEdgeFor(5, 0)
	require.Equal(t, 5, n, "no time bound: the count alone")
	require.True(t, more)
	for q.Len() > 0 {
		q.DrainEdge()
	}
	require.Equal(t, 200, ran)
}
