package reliability

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// stormSignal is what the storms send. Without os/signal.Notify the Go
// runtime catches it and does nothing, so each one only interrupts the
// system call the thread is in (epoll_wait is never restarted after a
// handler, whatever SA_RESTART says).
const stormSignal = unix.SIGUSR1

// stormInterval paces the storms. Unpaced (half a million a second) the
// target thread does little but run signal handlers: it seldom reaches a
// sleep for a signal to cut short, which is what the storms are for, and
// its timers run tens of milliseconds late. One signal every 20 µs is
// still dozens in each 2 ms sleep between the loop's timers.
const stormInterval = 20 * time.Microsecond

// signalStorm sends stormSignal to thread tid every stormInterval (spinning
// between signals, so pacing needs no timer of its own) until the returned
// stop function is called; stop returns how many it sent.
func signalStorm(t *testing.T, tid int) (stop func() uint64) {
	t.Helper()
	pid := unix.Getpid()
	var sent atomic.Uint64
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var next time.Time
		for {
			select {
			case <-quit:
				return
			default:
			}
			if err := unix.Tgkill(pid, tid, stormSignal); err != nil {
				t.Errorf("tgkill: %v", err)
				return
			}
			sent.Add(1)
			// A sender that was descheduled starts afresh rather than
			// catching up in an unpaced burst.
			next = later(next, time.Now()).Add(stormInterval)
			for time.Now().Before(next) {
				runtime.Gosched()
			}
		}
	}()
	var once sync.Once
	stop = func() uint64 {
		once.Do(func() { close(quit); wg.Wait() })
		return sent.Load()
	}
	t.Cleanup(func() { stop() })
	return stop
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// onThread runs fn on a goroutine locked to its own OS thread, passing the
// thread's id to ready before fn starts, and waits for fn to return.
func onThread(t *testing.T, fn func(tid int), ready func(tid int)) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := unix.Gettid()
		ready(tid)
		fn(tid)
	}()
	recv(t, done, "locked goroutine")
}

// A storm of signals at the thread that runs the loop, while the loop sleeps
// in epoll_wait between timers: Run returns nil (EINTR is never an error),
// every one-shot timer fires exactly once and never before its time (by the
// loop's clock and by the wall clock), and the repeating timer keeps its
// period. Lateness is logged as a figure, not asserted.
func TestEINTRStormKeepsTimersExact(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	const timers = 200
	const span = 400 * time.Millisecond
	fired := make([]int, timers)
	late := make([]time.Duration, timers)
	var early []int
	// Timers count from the loop's cached time, which is also a wall
	// clock instant (with a monotonic reading).
	startLoop := l.Now()
	for i := range timers {
		d := time.Duration(i+1) * span / timers
		l.AfterFunc(d, func() {
			fired[i]++
			wall := time.Since(startLoop)
			if wall < d || l.Now().Sub(startLoop) < d {
				early = append(early, i)
			}
			late[i] = wall - d
		})
	}
	ticks := 0
	tick := l.NewTimer(func() { ticks++ })
	require.NoError(t, tick.Start(10*time.Millisecond, 10*time.Millisecond))
	l.AfterFunc(span+5*time.Millisecond, func() { tick.Stop() })

	var stop func() uint64
	var runErr error
	var wakeups int
	onThread(t, func(tid int) {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		before := voluntarySwitches(t, tid)
		runErr = l.Run(ctx)
		wakeups = voluntarySwitches(t, tid) - before
	}, func(tid int) { stop = signalStorm(t, tid) })
	sent := stop()
	elapsed := time.Since(startLoop)

	require.NoError(t, runErr, "Run under a signal storm")
	require.Empty(t, early, "timers that fired early")
	for i, n := range fired {
		require.Equal(t, 1, n, "timer %d fired %d times", i, n)
	}
	// A repeating timer re-arms from the loop time of its pass, so it
	// can fall behind but never run ahead: at most span/period ticks.
	require.LessOrEqual(t, ticks, int((span+5*time.Millisecond)/(10*time.Millisecond)))
	require.Greater(t, ticks, 0)
	slices.Sort(late)
	// Each time a signal cut a sleep short the thread slept again: far
	// more sleeps than polls means the storm did hit epoll_wait.
	polls := int(l.Stats().Iterations)
	require.Greater(t, wakeups, 2*polls, "the signals never interrupted the poll")
	t.Logf("figures: %d signals sent in %v (%.0f/s) at the loop thread; it slept %d times for %d polls; %d one-shot timers each fired once, none early; lateness median %v, p99 %v, max %v; %d repeating ticks",
		sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds(), wakeups, polls, timers,
		late[timers/2], late[timers*99/100], late[timers-1], ticks)
}

// poller.Wait with a timeout under a signal storm returns no error and
// never before the timeout: EINTR is retried with the time left.
func TestEINTRStormPollerWait(t *testing.T) {
	checkLeaks(t)
	p, err := poller.New()
	require.NoError(t, err)
	defer p.Close()
	const waits, timeout = 10, 30 * time.Millisecond
	var stop func() uint64
	onThread(t, func(int) {
		ev := make([]poller.Event, 4)
		for range waits {
			start := time.Now()
			n, err := p.Wait(ev, timeout)
			took := time.Since(start)
			if err != nil || n != 0 || took < timeout {
				t.Errorf("Wait(%v) under signals: n=%d err=%v after %v", timeout, n, err, took)
			}
		}
	}, func(tid int) { stop = signalStorm(t, tid) })
	sent := stop()
	require.Greater(t, sent, uint64(100))
	t.Logf("figures: %d Waits of %v, %d signals: no error, none early", waits, timeout, sent)
}

// A blocking eventfd Read under a signal storm waits for the write and
// returns the counter, never EINTR.
func TestEINTRStormEventfdRead(t *testing.T) {
	checkLeaks(t)
	e, err := eventfd.New(0, 0)
	require.NoError(t, err)
	defer e.Close()
	var stop func() uint64
	var got uint64
	var readErr error
	onThread(t, func(int) {
		got, readErr = e.Read()
	}, func(tid int) {
		stop = signalStorm(t, tid)
		time.AfterFunc(50*time.Millisecond, func() { _ = e.Write(7) })
	})
	sent := stop()
	require.NoError(t, readErr)
	require.EqualValues(t, 7, got)
	require.Greater(t, sent, uint64(100))
}

// voluntarySwitches returns how many times thread tid has gone to sleep
// (voluntary context switches, from /proc).
func voluntarySwitches(t *testing.T, tid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
			return n
		}
	}
	t.Fatal("no voluntary_ctxt_switches in /proc status")
	return 0
}

// The ring readers' Poll under a signal storm: a Poll with a timeout
// returns 0 and no error, never early; a Poll that blocks without one
// returns the record emitted while it waited. EINTR never surfaces.
func TestEINTRStormRingReaderPoll(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	perfMap, err := bpftest.NewPerfEventArray(0)
	require.NoError(t, err)
	defer perfMap.Close()
	perfProd, err := bpftest.NewPerfProducer(perfMap, 8)
	require.NoError(t, err)
	defer perfProd.Close()
	pr, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{PagesPerCPU: 1})
	require.NoError(t, err)
	defer pr.Close()
	ringMap, err := bpftest.NewRingBuf(1 << 14)
	require.NoError(t, err)
	defer ringMap.Close()
	ringProd, err := bpftest.NewRingProducer(ringMap, 8)
	require.NoError(t, err)
	defer ringProd.Close()
	rr, err := ringbuf.NewRingReader(ringMap.FD())
	require.NoError(t, err)
	defer rr.Close()

	const timeout = 30 * time.Millisecond
	var stop func() uint64
	onThread(t, func(int) {
		for range 3 {
			start := time.Now()
			n, err := pr.Poll(timeout, ringbuf.Handler{})
			if took := time.Since(start); err != nil || n != 0 || took < timeout {
				t.Errorf("PerfReader.Poll(%v): n=%d err=%v after %v", timeout, n, err, took)
			}
			start = time.Now()
			n, err = rr.Poll(timeout, func([]byte) {})
			if took := time.Since(start); err != nil || n != 0 || took < timeout {
				t.Errorf("RingReader.Poll(%v): n=%d err=%v after %v", timeout, n, err, took)
			}
		}
		time.AfterFunc(20*time.Millisecond, func() {
			if err := perfProd.Emit(make([]byte, 8)); err != nil {
				t.Error(err)
			}
		})
		if n, err := pr.Poll(-1, ringbuf.Handler{}); err != nil || n != 1 {
			t.Errorf("PerfReader.Poll(-1): n=%d err=%v", n, err)
		}
		time.AfterFunc(20*time.Millisecond, func() {
			if err := ringProd.Emit(make([]byte, 8)); err != nil {
				t.Error(err)
			}
		})
		if n, err := rr.Poll(-1, func([]byte) {}); err != nil || n != 1 {
			t.Errorf("RingReader.Poll(-1): n=%d err=%v", n, err)
		}
	}, func(tid int) { stop = signalStorm(t, tid) })
	sent := stop()
	require.Greater(t, sent, uint64(100))
	t.Logf("figures: ring readers: 6 timed and 2 blocking Polls under %d signals: no EINTR, none early", sent)
}
