package bench

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventpipe/eventpipe/loop"
)

// millionTimeout is the timeout of the i-th timer in libuv's million_timers
// benchmark: 1 ms more for every thousand timers, so 10 million timers come
// due over 10 seconds, a thousand per millisecond, in start order.
func millionTimeout(i int) time.Duration {
	return time.Duration(1+i/1000) * time.Millisecond
}

// BenchmarkMillionTimers is libuv's million_timers shape (run it with
// -benchtime=10000000x for libuv's 10 million): b.N one-shot timers started
// in one go, the i-th due after millionTimeout(i), then run until all have
// fired. It is about memory more than speed: B/timer is the heap the
// pending timers hold (live heap with every timer started, less the live
// heap before, after a collection each time, over b.N), heap-MB how much
// the heap in use grew over the same span (spans held, not just objects). ns/op is per timer, starting and firing, and
// includes the wait for the last one to come due (b.N/1000 ms), which
// dominates below a million timers. init-ns/timer is the starting alone.
// time.AfterFunc's timers fire while the rest are started and while the
// heap is measured (untimed), so its figures are of a heap some timers have
// already left, and its ns/op is not comparable with the loop's, whose
// timers all wait for Run.
func BenchmarkMillionTimers(b *testing.B) {
	b.Run("impl=time.AfterFunc", benchMillionRuntime)
	b.Run("impl=loop", benchMillionLoop)
}

// liveHeap returns the bytes of live heap objects and the heap in use,
// after a collection.
func liveHeap() (live, inuse uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, ms.HeapInuse
}

func reportMillion(b *testing.B, n int, live0, inuse0 uint64, init time.Duration) {
	live, inuse := liveHeap()
	b.ReportMetric(float64(int64(live)-int64(live0))/float64(n), "B/timer")
	b.ReportMetric(float64(int64(inuse)-int64(inuse0))/(1<<20), "heap-MB")
	b.ReportMetric(float64(init.Nanoseconds())/float64(n), "init-ns/timer")
}

func benchMillionRuntime(b *testing.B) {
	n := b.N
	var fired atomic.Int64
	done := make(chan struct{})
	fn := func() {
		if fired.Add(1) == int64(n) {
			close(done)
		}
	}
	live0, inuse0 := liveHeap()
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		time.AfterFunc(millionTimeout(i), fn)
	}
	init := time.Since(start)
	b.StopTimer()
	reportMillion(b, n, live0, inuse0, init)
	b.StartTimer()
	<-done
	b.StopTimer()
	if got := fired.Load(); got != int64(n) {
		b.Fatalf("%d timers fired, want %d", got, n)
	}
}

func benchMillionLoop(b *testing.B) {
	n := b.N
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	fired := 0
	fn := func() { fired++ }
	live0, inuse0 := liveHeap()
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		l.AfterFunc(millionTimeout(i), fn)
	}
	init := time.Since(start)
	b.StopTimer()
	reportMillion(b, n, live0, inuse0, init)
	b.StartTimer()
	err = l.Run(context.Background()) // returns once no timer is left
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if fired != n {
		b.Fatalf("%d timers fired, want %d", fired, n)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}
