package loop

import (
	"testing"
	"time"
)

// The loop passes through the scheduler once yieldEvery has passed since
// it last did, and not before (yield.go says why).
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
	l.lastYield = l.now - int64(yieldEvery) // as if yieldEvery had passed
	if _, err := l.RunNoWait(); err != nil {
		t.Fatal(err)
	}
	if l.yields != first+1 {
		t.Fatalf("no yield once yieldEvery had passed: %d passes, want %d", l.yields, first+1)
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
