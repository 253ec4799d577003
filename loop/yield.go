package loop

import (
	"runtime"
	"sync/atomic"
	"time"
)

// With WithSchedulerYield(d), the loop passes through the Go scheduler
// (runtime.Gosched) at least once per 1.5 d of running: before it sleeps,
// once d has passed since the last time and a poll that does not wait
// finds nothing to do, or else at the end of an iteration once the loop
// has run for 1.5 d without yielding (a loop that always has work),
// counted from its last yield or the start of the run in progress,
// whichever is later (so that a loop driven by RunOnce or RunNoWait does
// not count the time between two calls as running).
//
// Why: a loop blocks in epoll_wait as a system call and never parks, so
// unless it yields, the scheduler never sees its goroutine again. The
// runtime's monitor (sysmon) takes a goroutine that has not been
// rescheduled for 10 ms (forcePreemptNS) for one that runs too long, and
// from then on takes its P away at each system call it catches in
// progress. Each retake wakes another thread to hold the P, and on a loop
// locked to its thread (a group's loops are) the loop's return needs the
// P handed back: futex wake-ups and context switches, with sysmon kept
// waking every 20 µs. Measured on an HTTP server with one loop on one CPU
// (bench/RESULTS.md): about 10 P hand-offs and 120 context switches per
// 1000 requests without the yield, under 2 and 40 with it, and 15 % less
// server CPU per request; a yield every 15 ms did not help, 8 ms did.
// The cost shows on a loop that shares its Ps with busy goroutines: the
// post benchmark (a plain loop draining a spinning producer's posts) was
// 13 % slower with yields every 5 ms. So yielding is an option, off by
// default, and on for a group's loops (one per thread, package group).
//
// A yield costs one pass through the scheduler, and on a locked loop a
// thread hand-off of its own (tens of microseconds). Made just before the
// loop would sleep anyway, that latency is hidden from the events it has
// just handled.
//
// When more loops run than there are Ps (GOMAXPROCS), a loop yields
// before every sleep instead: asleep in epoll_wait it keeps its P, and a
// loop whose events have come waits for that P until the sleeper yields
// or sysmon retakes it. Measured with two loops on one CPU (HTTP, 50
// connections): p99 4.9–7.1 ms with a yield per 5 ms, 0.6–1.2 ms with one
// per sleep, for 5–8 % more server CPU per request. With the yield tried
// before every sleep but only when a poll that does not wait finds
// nothing, and no pause after one that finds something: p99 3.1 ms
// against 7.4 ms with the pause, for 7 % more CPU (bench/RESULTS.md).
const (
	// yieldRetry is how long a loop that found work where it meant to
	// yield and sleep waits before it tries again: trying at every
	// iteration made a loop that drains posts as fast as they come go
	// through more, shorter iterations, and its producers write its
	// eventfd three times as often (BenchmarkPost). An oversubscribed
	// loop does not wait: a pause there let a loop sleep on the P
	// another loop's events were waiting for, for up to the next yield.
	yieldRetry = time.Millisecond
)

// yieldDue reports whether the yield period has passed, by the loop's
// cached time, since the loop last yielded.
func (l *Loop) yieldDue() bool {
	return l.now-l.lastYield >= l.yieldEvery
}

// busyYieldDue reports whether the loop has run for 1.5 yield periods
// without a yield, within the run in progress.
func (l *Loop) busyYieldDue() bool {
	return l.now-max(l.lastYield, l.runSince) >= l.yieldBusy
}

// yield passes through the scheduler. The caller updates the loop's time
// next: the yield may have waited for its turn.
func (l *Loop) yield() {
	l.lastYield = l.now
	l.yields++
	runtime.Gosched()
	l.procs = int32(runtime.GOMAXPROCS(0))
}

// loopsRunning counts the loops of the process inside a run, for
// oversubscribed.
var loopsRunning atomic.Int32

// oversubscribed reports whether more loops run than there are Ps, so that
// a loop asleep in epoll_wait may hold a P another loop is waiting for.
// Then a loop yields before every sleep. procs is GOMAXPROCS as of the
// last yield (it takes the scheduler's lock; it may change at run time).
func (l *Loop) oversubscribed() bool {
	return loopsRunning.Load() > l.procs
}
