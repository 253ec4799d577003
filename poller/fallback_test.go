package poller

import (
	"testing"
	"time"
)

// TestMillisecondFallback runs timed waits through the epoll_pwait path
// used where epoll_pwait2 is missing or filtered: the timeout is rounded up
// to whole milliseconds, never down.
func TestMillisecondFallback(t *testing.T) {
	if noPwait2.Load() {
		t.Log("epoll_pwait2 already unavailable here; this is the only path")
	}
	noPwait2.Store(true)
	defer noPwait2.Store(false)
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, timeout := range []time.Duration{1, time.Millisecond / 2, 3 * time.Millisecond} {
		start := time.Now()
		n, err := p.Wait(make([]Event, 1), timeout)
		if err != nil || n != 0 {
			t.Fatalf("Wait(%v) = %d, %v", timeout, n, err)
		}
		if elapsed := time.Since(start); elapsed < timeout {
			t.Fatalf("Wait(%v) returned after %v: rounded down", timeout, elapsed)
		}
	}
}
