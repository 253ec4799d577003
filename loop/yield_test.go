package loop

import (
	"testing"
	"time"
)

// A loop that never sleeps (RunNoWait) passes through the scheduler once
// yieldBusy has passed since it last did, and not before (yield.go says
// why).
func TestYieldWhenDue(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	keep := l.NewTimer(func() {})
	if err := keep.Start(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	first := l.yields
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	if l.yields != first {
		t.Fatalf("yielded again %v after the last yield: %d passes, want %d", time.Duration(l.now-l.lastYield), l.yields, first)
	}
	l.lastYield = l.now - int64(yieldEvery) // due before a sleep, not yet for a loop that never sleeps
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	if l.yields != first {
		t.Fatalf("a loop that does not sleep yielded after yieldEvery, before yieldBusy: %d passes, want %d", l.yields, first)
	}
	l.lastYield = l.now - int64(yieldBusy)
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	if l.yields != first+1 {
		t.Fatalf("no yield once yieldBusy had passed: %d passes, want %d", l.yields, first+1)
	}
}

// A loop about to sleep yields first once yieldEvery has passed (sooner
// than a loop that never sleeps), and then sleeps as it would have.
func TestYieldBeforeSleep(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fired := false
	timer := l.NewTimer(func() { fired = true })
	if err := timer.Start(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	l.lastYield = l.now - int64(yieldEvery)
	before := l.yields
	// RunOnce would sleep for the hour; a Post makes the poll return at once,
	// after the yield.
	if err := l.Post(func() {}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.RunOnce(); err != nil {
		t.Fatal(err)
	}
	if l.yields != before+1 {
		t.Fatalf("no yield before a poll that may block: %d passes, want %d", l.yields, before+1)
	}
	if fired {
		t.Fatal("the hour timer fired")
	}
}

// A loop kept busy by a repeating timer yields on its own as time passes.
func TestYieldWhileRunning(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	var tick *Timer
	tick = l.NewTimer(func() {
		if time.Since(start) > 6*yieldEvery {
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
		t.Fatalf("%d passes through the scheduler in %v of running, want at least 2 (one per %v)", l.yields, time.Since(start), yieldEvery)
	}
}

// With more loops running than Ps, a loop yields before every sleep, so a
// loop waiting for the P it holds gets it; otherwise only when yieldEvery
// has passed.
func TestYieldEverySleepWhenOversubscribed(t *testing.T) {
	l, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	keep := l.NewTimer(func() {})
	if err := keep.Start(time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	sleepOnce := func() {
		t.Helper()
		// RunOnce would sleep for the hour; a Post ends the poll at once.
		if err := l.Post(func() {}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RunOnce(); err != nil {
			t.Fatal(err)
		}
	}
	sleepOnce()
	before := l.yields
	sleepOnce()
	if l.yields != before {
		t.Fatalf("one loop on %d Ps yielded before a sleep %v after its last yield", l.procs, time.Duration(l.now-l.lastYield))
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
}
