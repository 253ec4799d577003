package loop_test

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// allHandles makes one handle of every kind, each active.
func allHandles(t *testing.T, l *loop.Loop, fd int) map[string]handle {
	t.Helper()
	tm := l.NewTimer(func() {})
	require.NoError(t, tm.Start(time.Hour, 0))
	idle := l.NewIdle(func() {})
	require.NoError(t, idle.Start())
	prep := l.NewPrepare(func() {})
	require.NoError(t, prep.Start())
	chk := l.NewCheck(func() {})
	require.NoError(t, chk.Start())
	w, err := l.Watch(fd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	a, err := l.NewAsync(func() {})
	require.NoError(t, err)
	return map[string]handle{"timer": tm, "idle": idle, "prepare": prep, "check": chk, "watcher": w, "async": a}
}

// Close never runs the close callback synchronously: it runs on the loop, in
// the next iteration's close phase, exactly once.
func TestCloseCallbackNotSynchronous(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	for name, h := range allHandles(t, l, efd) {
		calls := 0
		h.Close(func() { calls++ })
		require.Zero(t, calls, "%s: close callback ran inside Close", name)
		require.True(t, h.IsClosing(), name)
		require.False(t, h.IsActive(), name)
		noWait(t, l)
		require.Equal(t, 1, calls, name)
		noWait(t, l)
		require.Equal(t, 1, calls, name)
		require.True(t, h.IsClosing(), "%s: a closed handle stays closed", name)
	}
	require.False(t, l.Alive())
}

// Port of libuv's test-close-order.c: a handle closed by a timer callback and
// two closed by a check hook all get their close callbacks after the check
// hook, in the same iteration, in the order Close was called.
func TestCloseCallbacksRunAfterCheckInCloseOrder(t *testing.T) {
	l := newLoop(t)
	var order []string
	timerCalls, checkCalls := 0, 0
	var t1, t2 *loop.Timer
	var chk *loop.Hook
	t1 = l.NewTimer(func() {
		timerCalls++
		t1.Close(func() { order = append(order, "t1") })
	})
	t2 = l.NewTimer(func() { t.Error("t2 fired") })
	chk = l.NewCheck(func() {
		require.Equal(t, 0, checkCalls)
		require.Equal(t, 1, timerCalls)
		require.Empty(t, order, "a close callback ran before the check hook")
		chk.Close(func() { order = append(order, "check") })
		t2.Close(func() { order = append(order, "t2") })
		checkCalls++
	})
	require.NoError(t, t1.Start(0, 0))
	require.NoError(t, t2.Start(100*time.Second, 0))
	require.NoError(t, chk.Start())
	iter0 := l.Stats().Iterations
	run(t, l)
	require.Equal(t, 1, checkCalls)
	require.Equal(t, 1, timerCalls)
	require.Equal(t, []string{"t1", "check", "t2"}, order)
	require.Equal(t, iter0+1, l.Stats().Iterations, "all three closed in the first iteration")
}

// Close callbacks of handles of mixed kinds closed in one iteration run in
// the order Close was called.
func TestCloseCallbacksRunInCallOrder(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	hs := allHandles(t, l, efd)
	names := []string{"watcher", "check", "timer", "async", "idle", "prepare"}
	var order []string
	l.AfterFunc(0, func() {
		for _, n := range names {
			hs[n].Close(func() { order = append(order, n) })
		}
	})
	run(t, l)
	require.Equal(t, names, order)
}

// A closing handle keeps the loop alive until its close callback ran, even
// when it is not referenced.
func TestClosingHandleKeepsLoopAlive(t *testing.T) {
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	tm.Unref()
	closed := false
	tm.Close(func() { closed = true })
	require.True(t, l.Alive())
	run(t, l)
	require.True(t, closed)
	require.False(t, l.Alive())
}

// Loop.Close stops everything and gives every resource back: posted tasks run
// once, queued work is cancelled, running work is waited for, pending close
// callbacks run, and descriptors and goroutines return to baseline.
func TestLoopCloseLeavesNothingBehind(t *testing.T) {
	efd := eventFD(t)
	before := leakcheck.Take()
	l, err := loop.New(loop.WithWorkers(2))
	require.NoError(t, err)
	hs := allHandles(t, l, efd)
	signal(t, efd)

	closes := 0
	hs["timer"].Close(func() { closes++ })

	var posted atomic.Int32
	for range 10 {
		require.NoError(t, l.Post(func() { posted.Add(1) }))
	}

	release := make(chan struct{})
	started := make(chan struct{}, 2)
	var workRan, finished atomic.Int32
	var doneErrs []error
	var doneMu sync.Mutex
	done := func(err error) {
		doneMu.Lock()
		doneErrs = append(doneErrs, err)
		doneMu.Unlock()
	}
	for range 2 {
		_, err := l.QueueWork(func() {
			workRan.Add(1)
			started <- struct{}{}
			<-release
			finished.Add(1)
		}, done)
		require.NoError(t, err)
	}
	for range 5 {
		_, err := l.QueueWork(func() { workRan.Add(1) }, done)
		require.NoError(t, err)
	}
	<-started
	<-started

	go func() {
		time.Sleep(20 * time.Millisecond)
		close(release)
	}()
	require.NoError(t, l.Close())

	require.EqualValues(t, 10, posted.Load(), "accepted posts run once by Close")
	require.Equal(t, 1, closes, "pending close callback")
	require.EqualValues(t, 2, finished.Load(), "Close returned before running work finished")
	require.EqualValues(t, 2, workRan.Load(), "queued work ran instead of being cancelled")
	doneMu.Lock()
	require.Len(t, doneErrs, 7, "every queued work's done exactly once")
	canceled := 0
	for _, e := range doneErrs {
		if errors.Is(e, loop.ErrCanceled) {
			canceled++
		} else {
			require.NoError(t, e)
		}
	}
	doneMu.Unlock()
	require.Equal(t, 5, canceled)

	before.Check(t)
}

// A second Close and any use of a closed loop are os.ErrClosed.
func TestLoopUseAfterClose(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)
	tm := l.NewTimer(func() {})
	a, err := l.NewAsync(func() {})
	require.NoError(t, err)
	require.NoError(t, l.Close())

	require.ErrorIs(t, l.Close(), os.ErrClosed)
	require.ErrorIs(t, l.Post(func() {}), os.ErrClosed)
	require.ErrorIs(t, a.Send(), os.ErrClosed)
	require.ErrorIs(t, tm.Start(0, 0), os.ErrClosed)
	_, err = l.NewAsync(func() {})
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = l.QueueWork(func() {}, func(error) {})
	require.ErrorIs(t, err, os.ErrClosed)
	require.ErrorIs(t, l.Run(t.Context()), os.ErrClosed)
	_, err = l.RunOnce()
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = l.RunNoWait()
	require.ErrorIs(t, err, os.ErrClosed)
	require.False(t, l.Alive())
}

// Posts racing with Close from many goroutines: each Post either returns nil
// and its function runs exactly once, or returns os.ErrClosed and never runs.
// Producers post without pause (up to a cap) until refused, so posts land
// before, during and after Close; part are drained by a running loop, the
// rest by Close.
func TestPostRacingWithClose(t *testing.T) {
	const producers, rounds, maxPosts = 6, 5, 2000
	refusals := 0
	for round := range rounds {
		l := newLoop(t)
		type record struct {
			ran      atomic.Int32
			accepted bool
		}
		recs := make([][]*record, producers)
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range maxPosts {
					r := &record{}
					err := l.Post(func() { r.ran.Add(1) })
					if err != nil && !errors.Is(err, os.ErrClosed) {
						t.Errorf("post: %v", err)
					}
					r.accepted = err == nil
					recs[p] = append(recs[p], r)
					if err != nil {
						return
					}
				}
			}()
		}
		// Let the loop drain a share of the posts, then close under the
		// producers.
		for l.Stats().TasksRun < 300 {
			_, err := l.RunOnce() // blocks until the producers' next wakeup
			require.NoError(t, err)
		}
		require.NoError(t, l.Close())
		wg.Wait()

		for p, rs := range recs {
			for i, r := range rs {
				if r.accepted {
					require.EqualValues(t, 1, r.ran.Load(), "round %d: accepted post %d/%d ran %d times", round, p, i, r.ran.Load())
				} else {
					refusals++
					require.EqualValues(t, 0, r.ran.Load(), "round %d: refused post %d/%d ran", round, p, i)
				}
			}
		}
	}
	t.Logf("%d producers refused over %d rounds", refusals, rounds)
}

// Close refuses posts made after it started, even from a task Close itself
// runs: a task that re-posts itself on every run cannot keep Close from
// returning, and its last Post is refused.
func TestCloseEndsWithSelfRepostingTask(t *testing.T) {
	l := newLoop(t)
	var give atomic.Bool // set by the guard so a stuck Close can finish
	var runs atomic.Int64
	var lastErr atomic.Value
	var task func()
	task = func() {
		runs.Add(1)
		if give.Load() {
			return
		}
		if err := l.Post(task); err != nil {
			lastErr.Store(err)
		}
	}
	require.NoError(t, l.Post(task))
	noWait(t, l)
	noWait(t, l)
	require.GreaterOrEqual(t, runs.Load(), int64(2))

	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(runGuard):
		give.Store(true)
		<-closed
		t.Fatalf("Close kept running a task that re-posts itself (%d runs): posts made during Close were accepted", runs.Load())
	}
	err, _ := lastErr.Load().(error)
	require.ErrorIs(t, err, os.ErrClosed)
}
