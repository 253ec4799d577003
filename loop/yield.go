package loop

import (
	"runtime"
	"time"
)

// yieldEvery is the longest the loop runs between two passes through the
// Go scheduler.
//
// A loop blocks in epoll_wait as a system call and never parks, so unless
// it yields, the scheduler never sees its goroutine again. The runtime's
// monitor (sysmon) takes a goroutine that has not been rescheduled for
// 10 ms for one that runs too long, and from then on takes its P away at
// each system call it catches in progress. Each retake wakes another
// thread to hold the P, and on a loop locked to its thread (a group's
// loops are) the loop's return needs the P handed back: futex wake-ups
// and context switches, and sysmon kept waking every 20 µs. Measured on
// an HTTP server with one loop on one CPU (bench/RESULTS.md): 11 P
// hand-offs and 120 context switches per 1000 requests without the yield,
// 1.6 and 20 with it, and about 15 % less server CPU per request. A yield
// every 5 ms keeps the loop off that path for the price of one pass
// through the scheduler (a thread hand-off of its own when locked) per
// 5 ms, and lets other goroutines run when GOMAXPROCS is 1.
const yieldEvery = 5 * time.Millisecond

// yieldIfDue passes through the scheduler when yieldEvery has passed, by
// the loop's cached time, since the last time it did. The caller updates
// the time next: the yield may have waited for its turn.
func (l *Loop) yieldIfDue() {
	if l.now-l.lastYield < int64(yieldEvery) {
		return
	}
	l.lastYield = l.now
	l.yields++
	runtime.Gosched()
}
