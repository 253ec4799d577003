package loop_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// Shutdown on a loop with timers, watchers, async handles, hooks, queued and
// running work: close callbacks already requested run once, handles it
// closes get none but their close hooks run, queued work gets ErrCanceled,
// running work sees its context end and its done runs, accepted posts run,
// new ones are refused, and nothing is left behind.
func TestShutdownClosesEverything(t *testing.T) {
	efd := eventFD(t)
	sp := socketPair(t)
	before := leakcheck.Take()
	l, err := loop.New(loop.WithWorkers(2))
	require.NoError(t, err)

	hs := allHandles(t, l, efd)
	stoppedTimer := l.NewTimer(func() {})
	hs["stopped timer"] = stoppedTimer
	stoppedWatcher, err := l.Watch(sp[0], poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	stoppedWatcher.Stop()
	hs["stopped watcher"] = stoppedWatcher
	hs["after func"] = l.AfterFunc(time.Hour, func() {})
	sig := l.NewSignal(func(os.Signal) {})
	require.NoError(t, sig.Start(syscall.SIGUSR2)) // its relay goroutine must end too
	hs["signal"] = sig
	hooks := map[string]int{}
	for name, h := range hs {
		h.(interface{ SetCloseHook(func()) }).SetCloseHook(func() { hooks[name]++ })
	}
	requested := 0
	closing := l.NewTimer(func() {})
	closing.Close(func() { requested++ })

	posted := 0
	for range 10 {
		require.NoError(t, l.Post(func() { posted++ }))
	}

	var running sync.WaitGroup
	running.Add(2)
	var sawCancel atomic.Int32
	var doneErrs []error
	done := func(err error) { doneErrs = append(doneErrs, err) }
	for range 2 {
		_, err := l.QueueWorkContext(func(ctx context.Context) {
			running.Done()
			<-ctx.Done()
			sawCancel.Add(1)
		}, done)
		require.NoError(t, err)
	}
	running.Wait()
	for range 3 {
		_, err := l.QueueWorkContext(func(context.Context) { t.Error("queued work ran") }, done)
		require.NoError(t, err)
	}

	began := time.Now()
	require.NoError(t, l.Shutdown(t.Context()))
	t.Logf("figures: Shutdown of %d handles, 10 queued posts, 3 queued and 2 running work items (heeding their context) took %v",
		len(hs)+1, time.Since(began).Round(10*time.Microsecond))

	require.Equal(t, 10, posted, "accepted posts run")
	require.Equal(t, 1, requested, "the close callback requested before")
	for name := range hs {
		require.Equal(t, 1, hooks[name], "close hook of the %s", name)
		require.True(t, hs[name].IsClosing(), name)
	}
	require.EqualValues(t, 2, sawCancel.Load(), "running work saw its context end")
	require.Len(t, doneErrs, 5)
	canceled := 0
	for _, e := range doneErrs {
		if errors.Is(e, loop.ErrCanceled) {
			canceled++
		} else {
			require.NoError(t, e)
		}
	}
	require.Equal(t, 3, canceled)
	require.False(t, l.Alive())
	require.ErrorIs(t, l.Post(func() {}), os.ErrClosed)
	require.ErrorIs(t, l.Shutdown(t.Context()), os.ErrClosed)
	require.ErrorIs(t, l.Close(), os.ErrClosed)
	before.Check(t)
}

// Work that ignores its context: Shutdown returns when ctx ends, with an
// error that says how much work it abandoned; that work's done never runs,
// and its worker goroutine ends once the function returns.
func TestShutdownAbandonsWorkThatIgnoresItsContext(t *testing.T) {
	before := leakcheck.Take()
	l, err := loop.New(loop.WithWorkers(3))
	require.NoError(t, err)
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(3)
	doneRan := 0
	for range 2 {
		_, err := l.QueueWork(func() { started.Done(); <-release }, func(error) { doneRan++ })
		require.NoError(t, err)
	}
	quick := false
	_, err = l.QueueWorkContext(func(ctx context.Context) { started.Done(); <-ctx.Done() }, func(err error) { quick = err == nil })
	require.NoError(t, err)
	started.Wait()

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	began := time.Now()
	err = l.Shutdown(ctx)
	took := time.Since(began)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.EqualError(t, err, "loop: shutdown: 2 work item(s) still running, abandoned (done will not run): context deadline exceeded")
	require.True(t, quick, "work that heeded its context had its done run")
	require.Zero(t, doneRan)
	require.False(t, l.Alive())
	t.Logf("figures: Shutdown with 2 items ignoring a 50 ms context returned after %v", took.Round(time.Millisecond))

	close(release)
	require.Zero(t, doneRan, "abandoned work's done ran")
	before.Check(t) // the workers exit once their functions return
}

// Close bounds its wait for work that never returns: it abandons it after
// CloseTimeout instead of blocking for ever.
func TestCloseDoesNotBlockOnWorkThatNeverReturns(t *testing.T) {
	before := leakcheck.Take()
	l, err := loop.New()
	require.NoError(t, err)
	release := make(chan struct{})
	started := make(chan struct{})
	_, err = l.QueueWork(func() { close(started); <-release }, func(error) { t.Error("abandoned work's done ran") })
	require.NoError(t, err)
	<-started
	closed := make(chan error, 1)
	began := time.Now()
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Contains(t, err.Error(), "loop: close: 1 work item(s) still running, abandoned")
		require.GreaterOrEqual(t, time.Since(began), loop.CloseTimeout)
	case <-time.After(loop.CloseTimeout + runGuard):
		t.Fatal("Close blocked on work that never returns")
	}
	require.False(t, l.Alive())
	close(release)
	before.Check(t)
}

// Tasks and done callbacks that Shutdown runs may make handles (not start
// them: the loop is closing), which it closes too.
func TestShutdownClosesHandlesMadeWhileShuttingDown(t *testing.T) {
	l := newLoop(t)
	var late *loop.Timer
	hooked := false
	var startErr error
	require.NoError(t, l.Post(func() {
		late = l.NewTimer(func() {})
		startErr = late.Start(time.Hour, 0)
		late.SetCloseHook(func() { hooked = true })
	}))
	require.NoError(t, l.Shutdown(t.Context()))
	require.ErrorIs(t, startErr, os.ErrClosed)
	require.EqualError(t, startErr, "loop: timer start: closed")
	require.True(t, late.IsClosing())
	require.True(t, hooked)
}

// Shutdown from a callback of a running loop is EBUSY, as Close.
func TestShutdownWhileRunning(t *testing.T) {
	l := newLoop(t)
	var err error
	require.NoError(t, l.Post(func() { err = l.Shutdown(context.Background()) }))
	run(t, l)
	require.ErrorIs(t, err, unix.EBUSY)
	require.EqualError(t, err, "loop: shutdown: loop is running")
}

// QueueWorkContext: Cancel of running work ends its context (Cancel still
// says ErrBusy), and done gets what the work's return leads to.
func TestQueueWorkContextCancelRunning(t *testing.T) {
	l := newLoop(t)
	started := make(chan struct{})
	var doneErr error
	doneRan := false
	w, err := l.QueueWorkContext(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	}, func(err error) { doneErr, doneRan = err, true })
	require.NoError(t, err)
	<-started
	require.ErrorIs(t, w.Cancel(), loop.ErrBusy)
	run(t, l)
	require.True(t, doneRan)
	require.NoError(t, doneErr)
	err = w.Cancel()
	require.ErrorIs(t, err, loop.ErrBusy)
	require.EqualError(t, err, "loop: cancel work: already finished")
}

// A second Cancel of never-started work says so, and ErrCanceled is a
// context.Canceled.
func TestCancelTwice(t *testing.T) {
	l := newLoop(t, loop.WithWorkers(1))
	release := make(chan struct{})
	_, err := l.QueueWork(func() { <-release }, nil)
	require.NoError(t, err)
	var got error
	w, err := l.QueueWorkContext(func(context.Context) {}, func(err error) { got = err })
	require.NoError(t, err)
	require.NoError(t, w.Cancel())
	err = w.Cancel()
	require.ErrorIs(t, err, loop.ErrBusy)
	require.EqualError(t, err, "loop: cancel work: already canceled")
	close(release)
	run(t, l)
	require.ErrorIs(t, got, loop.ErrCanceled)
	require.ErrorIs(t, got, context.Canceled)
	require.True(t, errors.Is(loop.ErrCanceled, context.Canceled))
}

// A work function that exits its goroutine (runtime.Goexit, what t.FailNow
// does) still gets done, with ErrWorkExited, and its worker is replaced: with
// one worker, later work still runs. A panicking one gets a *PanicError that
// says it was the work function.
func TestWorkExitPaths(t *testing.T) {
	l := newLoop(t, loop.WithWorkers(1))
	var errs []error
	done := func(err error) { errs = append(errs, err) }
	_, err := l.QueueWork(func() { runtime.Goexit() }, done)
	require.NoError(t, err)
	_, err = l.QueueWork(func() { panic("boom") }, done)
	require.NoError(t, err)
	_, err = l.QueueWorkContext(func(context.Context) { runtime.Goexit() }, done)
	require.NoError(t, err)
	ran := false
	_, err = l.QueueWork(func() { ran = true }, done)
	require.NoError(t, err)
	run(t, l)

	require.Len(t, errs, 4)
	require.ErrorIs(t, errs[0], loop.ErrWorkExited)
	var pe *loop.PanicError
	require.ErrorAs(t, errs[1], &pe)
	require.Equal(t, "boom", pe.Value)
	require.Contains(t, pe.Error(), "loop: work function panicked: boom")
	require.ErrorIs(t, errs[2], loop.ErrWorkExited)
	require.NoError(t, errs[3])
	require.True(t, ran, "the worker a Goexit took down was replaced")

	require.NoError(t, l.Close())
	require.False(t, l.Alive(), "Alive after Close")
}

// Close (or Shutdown, every other round) racing with Run, RunOnce and
// RunNoWait from separate goroutines: either Close is refused with EBUSY
// (and succeeds once the run is over) or
// the run is refused with os.ErrClosed; a run that proceeds fires its due
// timer, and the race detector sees no unsynchronised access.
func TestCloseRacingWithRun(t *testing.T) {
	rounds := 300
	if testing.Short() {
		rounds = 50
	}
	refusedRuns, refusedCloses := 0, 0
	for round := range rounds {
		l, err := loop.New()
		require.NoError(t, err)
		fired := false
		l.AfterFunc(0, func() { fired = true })
		mode := round % 3
		start := make(chan struct{})
		runErr := make(chan error, 1)
		go func() {
			<-start
			switch mode {
			case 0:
				runErr <- l.Run(context.Background())
			case 1:
				_, err := l.RunOnce()
				runErr <- err
			default:
				_, err := l.RunNoWait()
				runErr <- err
			}
		}()
		closeErr := make(chan error, 1)
		go func() {
			<-start
			for {
				var err error
				if round%2 == 0 {
					err = l.Close()
				} else {
					err = l.Shutdown(context.Background())
				}
				if !errors.Is(err, unix.EBUSY) {
					closeErr <- err
					return
				}
				refusedCloses++
				runtime.Gosched()
			}
		}()
		close(start)
		rerr, cerr := <-runErr, <-closeErr
		require.NoError(t, cerr, "round %d: Close", round)
		if rerr != nil {
			require.ErrorIs(t, rerr, os.ErrClosed, "round %d, mode %d: run", round, mode)
			refusedRuns++
		} else {
			require.True(t, fired, "round %d, mode %d: the run went ahead without firing its due timer", round, mode)
		}
	}
	t.Logf("figures: %d rounds: %d runs refused as closed, %d Closes refused as busy", rounds, refusedRuns, refusedCloses)
}
