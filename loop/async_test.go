package loop_test

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// Sends made before the loop runs coalesce: 1000 Sends from several
// goroutines give at least one callback and far fewer than 1000, and cost far
// fewer than 1000 wakeup writes.
func TestAsyncSendsCoalesce(t *testing.T) {
	l := newLoop(t)
	calls := 0
	a, err := l.NewAsync(func() { calls++ })
	require.NoError(t, err)
	w0 := l.Stats().WakeupWrites

	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 250 {
				if err := a.Send(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	noWait(t, l)
	noWait(t, l)
	require.GreaterOrEqual(t, calls, 1)
	require.LessOrEqual(t, calls, 2, "sends made before one drain coalesce into one callback")
	require.Less(t, l.Stats().WakeupWrites-w0, uint64(10), "sends are not coalesced into few wakeup writes")
	a.Close(nil)
}

// The callback runs at least once after each Send: a Send issued while the
// callback is already running causes another callback.
func TestAsyncSendDuringCallbackCausesAnotherCallback(t *testing.T) {
	l := newLoop(t)
	calls := 0
	var a *loop.Async
	a, err := l.NewAsync(func() {
		calls++
		if calls == 1 {
			sent := make(chan error)
			go func() { sent <- a.Send() }()
			require.NoError(t, <-sent)
			return
		}
		a.Close(nil)
	})
	require.NoError(t, err)
	require.NoError(t, a.Send())
	run(t, l) // a lost send would leave the async open and hit the guard
	require.Equal(t, 2, calls)
}

// Port of libuv's test-async.c: another goroutine keeps sending until the
// loop has seen three callbacks; the loop then closes the handle and ends.
func TestAsyncFromAnotherGoroutine(t *testing.T) {
	l := newLoop(t)
	var seen atomic.Int32
	closes := 0
	var a *loop.Async
	a, err := l.NewAsync(func() {
		if seen.Add(1) == 3 {
			a.Close(func() { closes++ })
		}
	})
	require.NoError(t, err)
	require.True(t, a.IsActive(), "an async handle is active from creation")
	require.True(t, l.Alive())

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for seen.Load() < 3 {
			if err := a.Send(); err != nil {
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("Send: %v", err)
				}
				return
			}
		}
	}()
	run(t, l)
	<-stopped
	require.EqualValues(t, 3, seen.Load())
	require.Equal(t, 1, closes)
	require.False(t, a.IsActive())
	require.ErrorIs(t, a.Send(), os.ErrClosed, "Send after the handle closed")
}

// Send after Close of the handle, or of the loop, is os.ErrClosed; the
// callback of a closed handle never runs.
func TestAsyncSendAfterClose(t *testing.T) {
	l := newLoop(t)
	a, err := l.NewAsync(func() { t.Error("callback of a closed async ran") })
	require.NoError(t, err)
	a.Close(nil)
	require.ErrorIs(t, a.Send(), os.ErrClosed)
	run(t, l)

	b, err := l.NewAsync(func() {})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.ErrorIs(t, b.Send(), os.ErrClosed)
}

// NewAsync and Post refuse a nil callback.
func TestNilCallbacks(t *testing.T) {
	l := newLoop(t)
	_, err := l.NewAsync(nil)
	require.ErrorIs(t, err, loop.ErrNilCallback)
	require.ErrorIs(t, l.Post(nil), loop.ErrNilCallback)
	_, err = l.QueueWork(nil, func(error) {})
	require.ErrorIs(t, err, loop.ErrNilCallback)
	require.False(t, l.Alive())
}

// Posted tasks run on the loop goroutine, in FIFO order per producer, each
// exactly once, and wake a loop blocked in poll.
func TestPostFIFOPerProducer(t *testing.T) {
	const producers, perProducer = 4, 500
	efd := eventFD(t)
	l := newLoop(t)
	// A referenced watcher that never fires keeps Run blocked in poll, so
	// only the posts' wakeups make it go round.
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) { t.Error("unexpected event") })
	require.NoError(t, err)

	loopID := goid()
	next := make([]int, producers)
	total := 0
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perProducer {
				err := l.Post(func() {
					if goid() != loopID {
						t.Error("posted task ran off the loop goroutine")
					}
					if next[p] != i {
						t.Errorf("producer %d: task %d ran when %d was expected", p, i, next[p])
					}
					next[p] = i + 1
					if total++; total == producers*perProducer {
						l.Stop()
					}
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	run(t, l)
	wg.Wait()
	require.Equal(t, producers*perProducer, total)
	for p := range next {
		require.Equal(t, perProducer, next[p])
	}
	w.Stop()
}

// A pending post keeps an otherwise empty loop alive until it ran.
func TestPostKeepsLoopAlive(t *testing.T) {
	l := newLoop(t)
	ran := 0
	require.NoError(t, l.Post(func() { ran++ }))
	require.True(t, l.Alive())
	run(t, l)
	require.Equal(t, 1, ran)
	require.False(t, l.Alive())
}

// A task that keeps posting itself runs once per drain, so it cannot starve
// timers: the timer fires and the loop ends.
func TestSelfRepostingTaskDoesNotStarveTimers(t *testing.T) {
	l := newLoop(t)
	fired := false
	reposts := 0
	var task func()
	task = func() {
		if fired {
			return
		}
		if reposts == 0 {
			l.AfterFunc(time.Millisecond, func() { fired = true })
		}
		reposts++
		require.NoError(t, l.Post(task))
	}
	require.NoError(t, l.Post(task))
	run(t, l)
	require.True(t, fired)
	require.Greater(t, reposts, 0)
}
