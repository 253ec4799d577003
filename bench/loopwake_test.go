package bench

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkPerfLoopWake splits what it costs to reach the first record of
// a fill when the bare perf reader is watched on a loop (the hand-wired
// side of BenchmarkPipeOverhead, bare-loop) into the loop's phases, and
// compares it with a direct Consume of the same fill (the bare side). Per
// fill, medians in µs: before-poll, from RunOnce to the loop's prepare
// hook (its time, Alive and the hook lists: RunOnce runs no timers before
// it polls); poll, from the hook to the watcher's callback (epoll_wait on
// the loop's epoll instance, which holds the reader's, and the dispatch);
// to-first, from the callback to the first record's handler;
// direct-to-first, from a direct Consume to its first record;
// warm-before-poll, before-poll of a RunNoWait right after, with no fill
// in between; raw-wait, an
// epoll_wait on the loop's epoll instance made directly after a fill (the
// kernel's part of poll); clock, from a time.Now right after a fill to a
// time.Since after it (reading the clock in what the fill left cold), and
// warm-clock, the same pair again at once. The fills are of every ring's
// capacity, by the kernel, as in BenchmarkPipeOverhead: the gap between
// warm and cold before-poll is what the fill left cold.
func BenchmarkPerfLoopWake(b *testing.B) {
	m, rb := perfSetup(b, 64)
	pr, err := ringbuf.NewPerfReader(m.FD(), ringbuf.PerfOptions{PagesPerCPU: ringPages, CPUs: []int{emitCPU}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pr.Close() })
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	var prepared, called, first time.Time
	delivered, seen := 0, -1
	h := ringbuf.Handler{Sample: func(int, []byte) {
		if seen < 0 {
			first, seen = time.Now(), 0
		}
		delivered++
	}}
	prepare := l.NewPrepare(func() { prepared = time.Now() })
	if err := prepare.Start(); err != nil {
		b.Fatal(err)
	}
	prepare.Unref()
	w, err := l.Watch(pr.Fd(), poller.Readable, func(poller.Events) {
		called = time.Now()
		if _, err := pr.Consume(h); err != nil {
			b.Errorf("Consume: %v", err)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		w.Close(nil)
		prepare.Close(nil)
		if err := l.Run(context.Background()); err != nil {
			b.Error(err)
		}
		l.Close()
	})
	side := &pipeSide{b: b, rb: rb, cpus: 1}
	k := rb.capacity
	var beforePoll, poll, toFirst, direct, warm, rawWait, clock, warmClock []float64
	events := make([]unix.EpollEvent, 8)
	drainDirect := func() {
		for want := delivered + k; delivered < want; {
			if _, err := pr.Consume(h); err != nil {
				b.Fatal(err)
			}
		}
	}
	for range max(1, b.N/k) {
		side.fill(k)
		seen = -1
		start := time.Now()
		for want := delivered + k; delivered < want; {
			if _, err := l.RunOnce(); err != nil {
				b.Fatal(err)
			}
		}
		beforePoll = append(beforePoll, float64(prepared.Sub(start)))
		poll = append(poll, float64(called.Sub(prepared)))
		toFirst = append(toFirst, float64(first.Sub(called)))

		start = time.Now()
		if _, err := l.RunNoWait(); err != nil {
			b.Fatal(err)
		}
		warm = append(warm, float64(prepared.Sub(start)))

		side.fill(k)
		seen = -1
		start = time.Now()
		drainDirect()
		direct = append(direct, float64(first.Sub(start)))

		side.fill(k)
		start = time.Now()
		if n, err := unix.EpollWait(l.Fd(), events, -1); n != 1 || err != nil {
			b.Fatalf("epoll_wait on the loop's fd: %d, %v", n, err)
		}
		rawWait = append(rawWait, float64(time.Since(start)))
		drainDirect()

		side.fill(k)
		start = time.Now()
		clock = append(clock, float64(time.Since(start)))
		start = time.Now()
		warmClock = append(warmClock, float64(time.Since(start)))
		drainDirect()
	}
	if want := 4 * max(1, b.N/k) * k; delivered != want {
		b.Fatalf("delivered %d records, want %d", delivered, want)
	}
	b.ReportMetric(median(beforePoll)/1e3, "before-poll-µs")
	b.ReportMetric(median(poll)/1e3, "poll-µs")
	b.ReportMetric(median(toFirst)/1e3, "to-first-µs")
	b.ReportMetric(median(direct)/1e3, "direct-to-first-µs")
	b.ReportMetric(median(warm)/1e3, "warm-before-poll-µs")
	b.ReportMetric(median(rawWait)/1e3, "raw-wait-µs")
	b.ReportMetric(median(clock)/1e3, "clock-µs")
	b.ReportMetric(median(warmClock)/1e3, "warm-clock-µs")
}
