package loop

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The period the tests set, and the busy threshold the loop derives.
const (
	testYield     = 5 * time.Millisecond
	testYieldBusy = testYield + testYield/2
)

// A loop that always has work (an idle hook: it never sleeps) yields on
// its own once per testYieldBusy of running; one driven by RunNoWait does not
// count the time between calls as running.
func TestYieldWhenBusy(t *testing.T) {
	l, err := New(WithSchedulerYield(testYield))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	idle := runBusy(t, l, 4*testYieldBusy)
	if l.yields < 2 {
		t.Fatalf("%d yields in %v of an idle hook's running, want at least 2 (one per %v)", l.yields, time.Since(start), testYieldBusy)
	}
	idle.Stop()

	keep := l.NewTimer(func() {})
	if err := keep.Start(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	l.lastYield = l.now - int64(testYieldBusy) // as if testYieldBusy had passed between two calls
	before := l.yields
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	if l.yields != before {
		t.Fatalf("RunNoWait yielded for time spent outside the loop: %d yields, want none", l.yields-before)
	}
}

// A loop about to sleep yields first once testYield has passed (sooner
// than a loop that never sleeps), and then sleeps as it would have; with
// an event already waiting it does not yield, but handles the event.
func TestYieldBeforeSleep(t *testing.T) {
	l, err := New(WithSchedulerYield(testYield))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fired := 0
	timer := l.NewTimer(func() { fired++ })
	l.lastYield = l.now - int64(testYield)
	before := l.yields
	ran := false
	if err := l.Post(func() { ran = true }); err != nil {
		t.Fatal(err)
	}
	if err := timer.Start(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RunOnce(); err != nil {
		t.Fatal(err)
	}
	if !ran || l.yields != before {
		t.Fatalf("with a task waiting: ran %v, %d yields, want the task run and no yield", ran, l.yields-before)
	}
	// Having found work, the loop tries again only after yieldRetry.
	if l.yieldRetry <= l.now {
		t.Fatalf("no retry pause after a yield was put off: retry at %d, now %d", l.yieldRetry, l.now)
	}
	l.yieldRetry = l.now // as if it had passed
	// Nothing waiting now: RunOnce yields, then sleeps until the timer.
	if err := timer.Start(time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RunOnce(); err != nil {
		t.Fatal(err)
	}
	if l.yields != before+1 || fired != 1 {
		t.Fatalf("a poll that sleeps: %d yields, timer fired %d times; want 1 and 1", l.yields-before, fired)
	}
}

// A loop kept busy by a repeating timer yields on its own as time passes.
func TestYieldWhileRunning(t *testing.T) {
	l, err := New(WithSchedulerYield(testYield))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	var tick *Timer
	tick = l.NewTimer(func() {
		if time.Since(start) > 6*testYield {
			tick.Stop()
		}
	})
	if err := tick.Start(time.Millisecond, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l.yields < 2 {
		t.Fatalf("%d passes through the scheduler in %v of running, want at least 2 (one per %v)", l.yields, time.Since(start), testYield)
	}
}

// With more loops running than Ps, a loop yields before every sleep, also
// right after a poll found work, so a loop waiting for the P it holds gets
// it; otherwise only when testYield has passed.
func TestYieldEverySleepWhenOversubscribed(t *testing.T) {
	l, err := New(WithSchedulerYield(testYield))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wake := l.NewTimer(func() {})
	sleepOnce := func() {
		t.Helper()
		// Nothing to do but a timer 1 ms away: RunOnce sleeps for it.
		if err := wake.Start(time.Millisecond, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RunOnce(); err != nil {
			t.Fatal(err)
		}
	}
	l.lastYield = l.now + int64(time.Hour) // no yield falls due meanwhile
	before := l.yields
	sleepOnce()
	if l.yields != before {
		t.Fatalf("one loop on %d Ps yielded before a sleep with no yield due", l.procs)
	}
	procs := l.procs
	others := procs // as if procs other loops were running too
	loopsRunning.Add(others)
	defer loopsRunning.Add(-others)
	sleepOnce()
	sleepOnce()
	if l.yields != before+2 {
		t.Fatalf("%d loops on %d Ps: %d yields in two sleeps, want 2", procs+1, procs, l.yields-before)
	}
	// The pause after a poll that found work (yieldRetry) does not apply:
	// the other loops would wait for this one's P through it.
	l.yieldRetry = l.now + int64(time.Hour)
	sleepOnce()
	if l.yields != before+3 {
		t.Fatalf("%d loops on %d Ps, in a retry pause: %d yields in three sleeps, want 3", procs+1, procs, l.yields-before)
	}
}

// Without WithSchedulerYield a loop never yields; a negative period is
// EINVAL.
func TestYieldOff(t *testing.T) {
	if _, err := New(WithSchedulerYield(-time.Millisecond)); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("WithSchedulerYield(-1ms): %v, want EINVAL", err)
	}
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	runBusy(t, l, 4*testYieldBusy)
	if l.yields != 0 {
		t.Fatalf("a loop without WithSchedulerYield yielded %d times", l.yields)
	}
}

// runBusy runs l with an idle hook (so it never sleeps) for about d, and
// returns the hook, stopped with the loop but not closed.
func runBusy(t *testing.T, l *Loop, d time.Duration) *Hook {
	t.Helper()
	start := time.Now()
	idle := l.NewIdle(func() {
		if time.Since(start) > d {
			l.Stop()
		}
	})
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	return idle
}
