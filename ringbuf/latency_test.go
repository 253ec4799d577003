package ringbuf_test

import (
	"context"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkWakeupToCallback measures, over b.N samples, the time from a
// producer starting to emit one record to the reader's callback receiving
// it, with the consumer asleep beforehand: reader=perf or ring, consumed by
// a goroutine blocked in Poll (via=poll) or by a loop.Loop watching Fd
// (via=loop). The emit is a send(2) whose socket filter writes the record,
// so every figure includes the same few microseconds of producer work
// before the kernel's wakeup. p50-ns and p99-ns are the figures; ns/op is
// the whole sample period, including a pause that lets the consumer go
// back to sleep.
func BenchmarkWakeupToCallback(b *testing.B) {
	for _, reader := range []string{"perf", "ring"} {
		for _, via := range []string{"poll", "loop"} {
			b.Run("reader="+reader+"/via="+via, func(b *testing.B) { benchWakeup(b, reader, via) })
		}
	}
}

func benchWakeup(b *testing.B, reader, via string) {
	bpftest.Require(b)
	const cpu = 0
	// The producer runs on cpu; the consumer may run anywhere.
	runtime.LockOSThread() // never unlocked: the pinned thread exits with the benchmark's goroutine
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		b.Fatal(err)
	}

	base := time.Now()
	var t1 atomic.Int64
	ack := make(chan struct{}, 1)
	arrived := func() {
		t1.Store(int64(time.Since(base)))
		ack <- struct{}{}
	}

	var (
		fd      int
		consume func() error
		poll    func() error
		prod    *bpftest.Producer
		err     error
	)
	switch reader {
	case "perf":
		m, err := bpftest.NewPerfEventArray(0)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if prod, err = bpftest.NewPerfProducer(m, 16); err != nil {
			b.Fatal(err)
		}
		r, err := ringbuf.NewPerfReader(m.FD(), ringbuf.PerfOptions{CPUs: []int{cpu}})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		h := ringbuf.Handler{Sample: func(int, []byte) { arrived() }}
		fd = r.Fd()
		consume = func() error { _, err := r.Consume(h); return err }
		poll = func() error { _, err := r.Poll(-1, h); return err }
	case "ring":
		m, err := bpftest.NewRingBuf(1 << 16)
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		if prod, err = bpftest.NewRingProducer(m, 16); err != nil {
			b.Fatal(err)
		}
		r, err := ringbuf.NewRingReader(m.FD())
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		fn := func([]byte) { arrived() }
		fd = r.Fd()
		consume = func() error { _, err := r.Consume(fn); return err }
		poll = func() error { _, err := r.Poll(-1, fn); return err }
	}
	defer prod.Close()

	var stop atomic.Bool
	consumerDone := make(chan error, 1)
	var l *loop.Loop
	switch via {
	case "poll":
		go func() {
			for !stop.Load() {
				if err := poll(); err != nil {
					consumerDone <- err
					return
				}
			}
			consumerDone <- nil
		}()
	case "loop":
		if l, err = loop.New(); err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		w, err := l.Watch(fd, poller.Readable, func(poller.Events) {
			if err := consume(); err != nil {
				b.Error(err)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		go func() { consumerDone <- l.Run(context.Background()) }()
		defer w.Stop()
	}

	buf := make([]byte, 16)
	sample := func() int64 {
		// Spin rather than sleep, so the producer's own timer and
		// scheduler hand-off stay out of the figure.
		for start := time.Now(); time.Since(start) < 30*time.Microsecond; {
		}
		t0 := int64(time.Since(base))
		if err := prod.Emit(buf); err != nil {
			b.Fatal(err)
		}
		<-ack
		return t1.Load() - t0
	}
	for range 200 {
		sample()
	}
	samples := make([]int64, b.N)
	b.ResetTimer()
	for i := range samples {
		samples[i] = sample()
	}
	b.StopTimer()

	stop.Store(true)
	if l != nil {
		l.Stop()
	} else {
		prod.Emit(buf) // wakes the Poll, which sees stop
		<-ack
	}
	if err := <-consumerDone; err != nil {
		b.Fatal(err)
	}
	slices.Sort(samples)
	pct := func(p int) float64 { return float64(samples[(len(samples)*p+99)/100-1]) }
	b.ReportMetric(pct(50), "p50-ns")
	b.ReportMetric(pct(99), "p99-ns")
}
