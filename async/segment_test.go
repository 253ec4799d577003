package async_test

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/async"
)

// postSeq posts n tasks that append first, first+1, ... to *got.
func postSeq(t *testing.T, q *async.Queue, got *[]int, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		require.NoError(t, q.Post(func() { *got = append(*got, i) }))
	}
}

func requireSeq(t *testing.T, got []int, first, n int) {
	t.Helper()
	require.Len(t, got, n)
	for i, v := range got {
		if v != first+i {
			t.Fatalf("task %d ran in place %d (of %d, first %d)", v, i, n, first)
		}
	}
}

// TestSegmentBoundaries posts counts around one and several segments' worth,
// twice on one queue so the second round starts mid-segment and reuses
// segments, and checks order, Len and the counts Drain returns.
func TestSegmentBoundaries(t *testing.T) {
	const S = async.SegSize
	for _, n := range []int{1, S - 1, S, S + 1, 2*S - 1, 2 * S, 2*S + 1, 7*S + 13} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			q := newQueue(t)
			next := 0
			for round := range 3 {
				var got []int
				postSeq(t, q, &got, next, n)
				require.Equal(t, n, q.Len(), "round %d", round)
				require.Equal(t, n, q.Drain(), "round %d", round)
				requireSeq(t, got, next, n)
				require.Zero(t, q.Len())
				require.Zero(t, q.Drain(), "nothing left")
				next += n
			}
			require.Equal(t, uint64(3*n), q.Ran())
		})
	}
}

// TestSegmentBoundariesInterleaved drains part of the way, posts across the
// boundary the consumer is about to reach, and drains the rest: nothing is
// skipped or repeated where the consumer and producers meet.
func TestSegmentBoundariesInterleaved(t *testing.T) {
	const S = async.SegSize
	q := newQueue(t)
	var got []int
	postSeq(t, q, &got, 0, S-1)
	require.Equal(t, S-1, q.Drain())
	postSeq(t, q, &got, S-1, 2) // the last slot of segment 0, the first of 1
	require.Equal(t, 2, q.Len())
	require.Equal(t, 2, q.Drain())
	postSeq(t, q, &got, S+1, S-1) // exactly fills segment 1
	require.Equal(t, S-1, q.Drain())
	postSeq(t, q, &got, 2*S, 1)
	require.Equal(t, 1, q.Drain())
	requireSeq(t, got, 0, 2*S+1)
}

// TestSegmentsAreReused: once the queue has held a backlog, posting and
// draining that much again allocates nothing, and a burst far larger than
// the reuse list does not stay pinned after it drained.
func TestSegmentsAreReused(t *testing.T) {
	const S = async.SegSize
	q := newQueue(t)
	fn := func() {}
	ran := 0
	allocs := testing.AllocsPerRun(20, func() {
		for range 10 * S {
			_ = q.Post(fn)
		}
		ran += q.Drain()
	})
	require.Zero(t, allocs)
	require.Equal(t, 21*10*S, ran, "AllocsPerRun makes one warm-up run")

	for range 100 * S {
		require.NoError(t, q.Post(fn))
	}
	require.Equal(t, 100*S, q.Drain())
	require.LessOrEqual(t, async.FreeSegments(q), async.MaxFree)
	require.Positive(t, async.FreeSegments(q))
}

// TestDrainIsBounded: tasks posted while a Drain runs are left for the next,
// so a task that posts itself again cannot keep one Drain going.
func TestDrainIsBounded(t *testing.T) {
	q := newQueue(t)
	runs := 0
	var again func()
	again = func() {
		runs++
		require.NoError(t, q.Post(again))
	}
	require.NoError(t, q.Post(again))
	for i := 1; i <= 3*async.SegSize; i++ {
		require.Equal(t, 1, q.Drain())
		require.Equal(t, i, runs)
		require.Equal(t, 1, q.Len())
	}

	// With producers posting all the time, every Drain still returns. They
	// hold the backlog near a few segments: producers that outran the
	// consumer would make each Drain longer than the one before.
	q.Drain()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if q.Len() > 4*async.SegSize {
					runtime.Gosched()
					continue
				}
				if err := q.Post(func() {}); err != nil {
					panic(err)
				}
			}
		})
	}
	drained := 0
	for range 200 {
		drained += q.Drain()
	}
	close(stop)
	wg.Wait()
	require.Positive(t, drained)
}

// TestPanicAtSegmentBoundary makes the last task of one segment and the
// first of the next panic: each Drain stops at its panic, keeps the rest in
// order, and leaves the descriptor readable.
func TestPanicAtSegmentBoundary(t *testing.T) {
	const S = async.SegSize
	q := newQueue(t)
	var got []int
	for i := range 2*S + 1 {
		require.NoError(t, q.Post(func() {
			if i == S-1 || i == S {
				panic(i)
			}
			got = append(got, i)
		}))
	}
	for _, want := range []int{S - 1, S} {
		var v any
		func() {
			defer func() { v = recover() }()
			q.Drain()
		}()
		require.Equal(t, want, v)
		require.Equal(t, 2*S+1-want-1, q.Len())
		require.True(t, readable(t, q), "woken for the rest")
	}
	require.Equal(t, S, q.Drain())
	require.Zero(t, q.Len())
	want := make([]int, 0, 2*S-1)
	for i := range 2*S + 1 {
		if i != S-1 && i != S {
			want = append(want, i)
		}
	}
	require.Equal(t, want, got)
	require.Equal(t, uint64(2*S-1), q.Ran(), "Ran counts the tasks that returned")
}

// TestCloseRacingWithPostAtSegmentBoundaries closes the queue while
// producers post across segment boundaries: every accepted task runs once,
// in its producer's order; every refused one fails with os.ErrClosed and
// never runs; no Post is accepted once Close has returned.
func TestCloseRacingWithPostAtSegmentBoundaries(t *testing.T) {
	const (
		producers = 4
		rounds    = 60
	)
	S := async.SegSize
	for round := range rounds {
		q, err := async.NewQueue()
		require.NoError(t, err)
		// Start each round at a different distance before a boundary.
		fill := S - producers*(round%8)
		if round%3 == 0 {
			fill = 2*S - 1
		}
		for range fill {
			require.NoError(t, q.Post(func() {}))
		}
		require.Equal(t, fill, q.Drain())

		runs := make([][]int, producers) // appended to only by the consumer
		accepted := make([]int, producers)
		var closeReturned, late atomic.Bool
		var wrong atomic.Pointer[error]
		var started sync.WaitGroup
		var wg sync.WaitGroup
		for p := range producers {
			started.Add(1)
			wg.Go(func() {
				started.Done()
				for seq := 0; ; seq++ {
					// Hold the backlog to a few segments, so a
					// round does not grow with the time Close
					// takes to be scheduled.
					for q.Len() > 4*S && !closeReturned.Load() {
						runtime.Gosched()
					}
					after := closeReturned.Load()
					err := q.Post(func() { runs[p] = append(runs[p], seq) })
					if err == nil {
						accepted[p]++
						if after {
							late.Store(true)
						}
						continue
					}
					if !errors.Is(err, os.ErrClosed) {
						wrong.Store(&err)
					}
					return
				}
			})
		}
		started.Wait()
		// Drain a little while they post, so the race meets a consumer
		// that has moved on from the first segment.
		for range round % 4 {
			q.Drain()
		}
		require.NoError(t, q.Close())
		closeReturned.Store(true)
		wg.Wait()
		q.Drain()
		require.Zero(t, q.Len())
		require.Zero(t, q.Drain())

		require.Nil(t, wrong.Load())
		require.False(t, late.Load(), "a Post was accepted after Close returned")
		for p := range producers {
			require.Len(t, runs[p], accepted[p], "round %d producer %d", round, p)
			for i, seq := range runs[p] {
				if seq != i {
					t.Fatalf("round %d producer %d: task %d ran in place %d", round, p, seq, i)
				}
			}
		}
	}
}

// TestLenFromAnotherGoroutine reads Len while producers post and a consumer
// drains across many segments: it never goes below zero or above what has
// been posted.
func TestLenFromAnotherGoroutine(t *testing.T) {
	q := newQueue(t)
	const producers = 3
	per := 20 * async.SegSize
	var posted atomic.Int64
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for range per {
				posted.Add(1) // before Post: an upper bound
				if err := q.Post(func() {}); err != nil {
					panic(err)
				}
			}
		})
	}
	done := make(chan struct{})
	var bad atomic.Pointer[string]
	var reads int
	go func() {
		defer close(done)
		for posted.Load() < int64(producers*per) || q.Len() > 0 {
			n := q.Len()
			if n < 0 || int64(n) > posted.Load() {
				s := fmt.Sprintf("Len %d with %d posted", n, posted.Load())
				bad.Store(&s)
			}
			reads++
		}
	}()
	total := 0
	for total < producers*per {
		total += q.Drain()
	}
	wg.Wait()
	<-done
	require.Nil(t, bad.Load())
	require.Equal(t, producers*per, total)
	require.Positive(t, reads)
}
