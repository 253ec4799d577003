package async_test

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/poller"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newQueue(t *testing.T) *async.Queue {
	t.Helper()
	q, err := async.NewQueue()
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// readable reports whether the queue's descriptor is readable right now.
func readable(t *testing.T, q *async.Queue) bool {
	t.Helper()
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Add(q.Fd(), poller.Readable, 0))
	n, err := p.Wait(make([]poller.Event, 1), 0)
	require.NoError(t, err)
	return n == 1
}

func TestFIFO(t *testing.T) {
	q := newQueue(t)
	var got []int
	for i := range 100 {
		require.NoError(t, q.Post(func() { got = append(got, i) }))
	}
	require.Equal(t, 100, q.Len())
	require.Equal(t, 100, q.Drain())
	for i := range 100 {
		require.Equal(t, i, got[i])
	}
	require.Zero(t, q.Len())
}

func TestFdReadableWhileTasksWait(t *testing.T) {
	q := newQueue(t)
	require.False(t, readable(t, q))
	require.NoError(t, q.Post(func() {}))
	require.True(t, readable(t, q))
	q.Drain()
	require.False(t, readable(t, q))
}

// TestManyProducersExactlyOnce posts a million tasks from eight goroutines
// while a consumer drains on readiness; every task runs exactly once and each
// producer's tasks run in the order it posted them.
func TestManyProducersExactlyOnce(t *testing.T) {
	const producers = 8
	perProducer := 1_000_000 / producers
	if testing.Short() {
		perProducer = 10_000
	}
	q := newQueue(t)
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Add(q.Fd(), poller.Readable, 0))

	runs := make([]uint32, producers*perProducer) // only the consumer writes
	last := make([]int, producers)                // consumer-only: last seq per producer
	for i := range last {
		last[i] = -1
	}
	var fifoBroken atomic.Int64
	var wg sync.WaitGroup
	for pr := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range perProducer {
				idx := pr*perProducer + seq
				err := q.Post(func() {
					runs[idx]++
					if seq != last[pr]+1 {
						fifoBroken.Add(1)
					}
					last[pr] = seq
				})
				if err != nil {
					panic(err)
				}
			}
		}()
	}
	allPosted := make(chan struct{})
	go func() { wg.Wait(); close(allPosted) }()

	total := 0
	events := make([]poller.Event, 1)
	for total < len(runs) {
		select {
		case <-allPosted:
			total += q.Drain() // the rest, even if no wakeup were pending
			continue
		default:
		}
		if _, err := p.Wait(events, 50e6); err != nil {
			t.Fatal(err)
		}
		total += q.Drain()
	}
	require.Equal(t, len(runs), total)
	for i, n := range runs {
		if n != 1 {
			t.Fatalf("task %d ran %d times", i, n)
		}
	}
	require.Zero(t, fifoBroken.Load(), "tasks of one producer ran out of order")
}

// TestWakeupsCoalesce counts eventfd writes against drain cycles: however
// many posts land between two drains, at most one write is made.
func TestWakeupsCoalesce(t *testing.T) {
	q := newQueue(t)
	var cycles int
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Producers that outran the consumer would make
				// every Drain longer than the one before: hold
				// the backlog to a few thousand tasks.
				if q.Len() > 4096 {
					runtime.Gosched()
					continue
				}
				_ = q.Post(func() {})
			}
		}()
	}
	for range 2000 {
		q.Drain()
		cycles++
	}
	close(stop)
	wg.Wait()
	q.Drain()
	cycles++
	require.LessOrEqual(t, q.Wakeups(), uint64(cycles+1),
		"at most one wakeup write per drain cycle (+1 for the one pending at the end)")

	// With no consumer running, a burst makes exactly one write.
	before := q.Wakeups()
	for range 1000 {
		require.NoError(t, q.Post(func() {}))
	}
	require.Equal(t, before+1, q.Wakeups())
}

func TestPostAfterClose(t *testing.T) {
	q, err := async.NewQueue()
	require.NoError(t, err)
	ran := 0
	require.NoError(t, q.Post(func() { ran++ }))
	require.NoError(t, q.Post(func() { ran++ }))
	require.NoError(t, q.Close())
	require.ErrorIs(t, q.Post(func() { ran++ }), os.ErrClosed)
	require.ErrorIs(t, q.Wake(), os.ErrClosed)
	require.ErrorIs(t, q.Close(), os.ErrClosed)
	require.Equal(t, -1, q.Fd())
	require.Equal(t, 2, q.Len(), "accepted tasks survive Close")
	require.Equal(t, 2, q.Drain())
	require.Equal(t, 2, ran)
}

func TestCloseRacingWithPost(t *testing.T) {
	for range 50 {
		q, err := async.NewQueue()
		require.NoError(t, err)
		var accepted, ran atomic.Int64
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					err := q.Post(func() { ran.Add(1) })
					if err == nil {
						accepted.Add(1)
					} else if !errors.Is(err, os.ErrClosed) {
						panic(err)
					}
				}
			}()
		}
		q.Drain()
		require.NoError(t, q.Close())
		wg.Wait()
		q.Drain()
		require.Equal(t, accepted.Load(), ran.Load())
	}
}

func TestNilTask(t *testing.T) {
	q := newQueue(t)
	require.ErrorIs(t, q.Post(nil), async.ErrNilTask)
}

func TestPanicKeepsRestOfBatch(t *testing.T) {
	q := newQueue(t)
	var got []int
	require.NoError(t, q.Post(func() { got = append(got, 1) }))
	require.NoError(t, q.Post(func() { panic("boom") }))
	require.NoError(t, q.Post(func() { got = append(got, 3) }))
	require.NoError(t, q.Post(func() { got = append(got, 4) }))

	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		q.Drain()
	}()
	require.Equal(t, []int{1}, got)
	require.Equal(t, 2, q.Len())
	require.True(t, readable(t, q), "the consumer is woken for the rest")
	require.NoError(t, q.Post(func() { got = append(got, 5) }))
	// The next Drain finishes the interrupted one, whose end was fixed
	// before 5 was posted; 5 waits for the drain after, and Fd says so.
	require.Equal(t, 2, q.Drain())
	require.Equal(t, []int{1, 3, 4}, got)
	require.True(t, readable(t, q), "the consumer is woken for the task posted during the panic")
	require.Equal(t, 1, q.Drain())
	require.Equal(t, []int{1, 3, 4, 5}, got)
}

func TestPostAllocatesNothingBeyondClosure(t *testing.T) {
	q := newQueue(t)
	fn := func() {}
	allocs := testing.AllocsPerRun(1000, func() {
		for range 64 {
			_ = q.Post(fn)
		}
		q.Drain()
	})
	require.Zero(t, allocs)
}

func BenchmarkPostDrain(b *testing.B) {
	q, _ := async.NewQueue()
	defer q.Close()
	fn := func() {}
	b.ReportAllocs()
	for b.Loop() {
		_ = q.Post(fn)
		q.Drain()
	}
}

// BenchmarkTimedDrain is the loop's shape, per task: a batch posted, then
// drained as one iteration does, under a count and a time bound.
func BenchmarkTimedDrain(b *testing.B) {
	q, _ := async.NewQueue()
	defer q.Close()
	fn := func() {}
	b.ReportAllocs()
	for b.Loop() {
		for range 1024 {
			_ = q.Post(fn)
		}
		// A preempted drain may stop on time before the batch is done.
		for ran := 0; ran < 1024; {
			n, _ := q.DrainEdgeFor(1024, time.Millisecond)
			ran += n
		}
	}
}

// TestDrainEdge: registered edge-triggered, each wakeup write is a new edge
// even though DrainEdge never resets the counter, so no post is stranded.
func TestDrainEdge(t *testing.T) {
	q := newQueue(t)
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Add(q.Fd(), poller.Readable|poller.EdgeTriggered, 0))
	events := make([]poller.Event, 1)
	ran := 0
	for round := range 100 {
		require.NoError(t, q.Post(func() { ran++ }))
		require.NoError(t, q.Post(func() { ran++ }))
		n, err := p.Wait(events, -1)
		require.NoError(t, err)
		require.Equal(t, 1, n, "round %d: a fresh edge", round)
		require.Equal(t, 2, q.DrainEdge())
		n, err = p.Wait(events, 0)
		require.NoError(t, err)
		require.Zero(t, n, "no edge without a new post")
	}
	require.Equal(t, 200, ran)
	require.Equal(t, uint64(100), q.Wakeups(), "one write per cycle")
}
