package loop_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// Work runs off the loop goroutine, its done callback on it, from inside Run,
// and what work wrote is visible to done.
func TestWorkDoneRunsOnLoopGoroutine(t *testing.T) {
	l := newLoop(t)
	loopID := goid()
	inRun := false // written only on the loop goroutine
	prep := l.NewPrepare(func() { inRun = true })
	require.NoError(t, prep.Start())
	prep.Unref()

	const n = 8
	results := make([]int, n) // written by work, read by done: the race detector checks the handoff
	dones := 0
	for i := range n {
		_, err := l.QueueWork(func() {
			if goid() == loopID {
				t.Error("work ran on the loop goroutine")
			}
			results[i] = i * i
		}, func(err error) {
			require.NoError(t, err)
			require.Equal(t, loopID, goid(), "done ran off the loop goroutine")
			require.True(t, inRun, "done ran outside Run")
			require.Equal(t, i*i, results[i])
			dones++
		})
		require.NoError(t, err)
	}
	require.Zero(t, dones)
	run(t, l)
	require.Equal(t, n, dones)
	require.False(t, l.Alive())
	prep.Stop()
}

// With every worker busy, queued items can all be cancelled: Cancel returns
// nil, done later gets ErrCanceled on the loop (never inside Cancel), and the
// work never runs. Cancelling running or finished work is ErrBusy (libuv
// test-threadpool-cancel.c).
func TestWorkCancelQueuedBehindBusyWorkers(t *testing.T) {
	l := newLoop(t, loop.WithWorkers(2))
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // a failing test must not leave Close waiting on the workers
	started := make(chan struct{}, 2)
	var blockersDone int
	blockers := make([]*loop.Work, 2)
	for i := range blockers {
		w, err := l.QueueWork(func() {
			started <- struct{}{}
			<-release
		}, func(err error) {
			require.NoError(t, err)
			blockersDone++
		})
		require.NoError(t, err)
		blockers[i] = w
	}
	<-started
	<-started

	const queued = 16
	var workRan atomic.Int32
	canceled, doneCalls := 0, 0
	items := make([]*loop.Work, queued)
	for i := range items {
		w, err := l.QueueWork(func() { workRan.Add(1) }, func(err error) {
			doneCalls++
			if errors.Is(err, loop.ErrCanceled) {
				canceled++
			}
		})
		require.NoError(t, err)
		items[i] = w
	}
	for i, w := range items {
		require.NoError(t, w.Cancel(), "item %d", i)
		require.Zero(t, doneCalls, "done ran inside Cancel")
	}
	for _, b := range blockers {
		require.ErrorIs(t, b.Cancel(), loop.ErrBusy, "cancelling running work")
	}
	require.True(t, l.Alive(), "cancelled work's done is still pending")

	free()
	run(t, l)
	require.Equal(t, queued, doneCalls)
	require.Equal(t, queued, canceled)
	require.Zero(t, workRan.Load(), "cancelled work ran")
	require.Equal(t, 2, blockersDone)
	require.ErrorIs(t, blockers[0].Cancel(), loop.ErrBusy, "cancelling finished work")
}

// WithWorkers bounds how many work items run at once.
func TestWorkersBoundConcurrency(t *testing.T) {
	l := newLoop(t, loop.WithWorkers(2))
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	var running, maxRunning atomic.Int32
	dones := 0
	for range 6 {
		_, err := l.QueueWork(func() {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			running.Add(-1)
		}, func(error) { dones++ })
		require.NoError(t, err)
	}
	time.Sleep(20 * time.Millisecond) // room for a third worker to show up
	free()
	run(t, l)
	require.Equal(t, 6, dones)
	require.EqualValues(t, 2, maxRunning.Load())
}

// Many items all complete, each done exactly once, and the loop ends.
func TestWorkMany(t *testing.T) {
	l := newLoop(t)
	const n = 300
	var ran atomic.Int32
	dones := make([]int, n)
	for i := range n {
		_, err := l.QueueWork(func() { ran.Add(1) }, func(err error) {
			require.NoError(t, err)
			dones[i]++
		})
		require.NoError(t, err)
	}
	run(t, l)
	require.EqualValues(t, n, ran.Load())
	for i, d := range dones {
		require.Equal(t, 1, d, "done of item %d", i)
	}
}

// A nil done is allowed; the worker count must be at least one.
func TestWorkOptions(t *testing.T) {
	_, err := loop.New(loop.WithWorkers(0))
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = loop.New(loop.WithWorkers(-3))
	require.ErrorIs(t, err, unix.EINVAL)

	l := newLoop(t, loop.WithWorkers(1))
	var ran atomic.Bool
	_, err = l.QueueWork(func() { ran.Store(true) }, nil)
	require.NoError(t, err)
	run(t, l)
	require.True(t, ran.Load())
}
