package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkRingWakeupLatency measures, over b.N samples, the time from the
// producer starting to emit one record to the loop's callback receiving it:
// a loop.Loop watching a PerfReader's or a RingReader's Fd (reader=perf or
// ring), asleep beforehand. With load=busy, GOMAXPROCS goroutines spin for
// the whole measurement, so every P of the Go runtime is taken: a wakeup
// that had to pass through the Go scheduler would wait for a preemption.
// The emit is a send(2) whose socket filter writes the record on emitCPU,
// so every figure includes the same few microseconds of producer work
// before the kernel's wakeup. p50-ns and p99-ns are the figures; ns/op is
// the whole sample period, including the gap that lets the loop go back to
// sleep.
func BenchmarkRingWakeupLatency(b *testing.B) {
	for _, reader := range []string{"perf", "ring"} {
		for _, load := range []string{"idle", "busy"} {
			b.Run(fmt.Sprintf("reader=%s/load=%s", reader, load), func(b *testing.B) {
				benchRingWakeup(b, reader, load == "busy")
			})
		}
	}
}

func benchRingWakeup(b *testing.B, reader string, busy bool) {
	bpftest.Require(b)
	b.Cleanup(pinToCPU(b, emitCPU))
	s := newSampler()
	var (
		fd      int
		consume func() error
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
		r, err := ringbuf.NewPerfReader(m.FD(), ringbuf.PerfOptions{CPUs: []int{emitCPU}})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		h := ringbuf.Handler{Sample: func(int, []byte) { s.arrived() }}
		fd = r.Fd()
		consume = func() error { _, err := r.Consume(h); return err }
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
		fn := func([]byte) { s.arrived() }
		fd = r.Fd()
		consume = func() error { _, err := r.Consume(fn); return err }
	}
	defer prod.Close()

	l, err := loop.New()
	if err != nil {
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
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()

	var stop atomic.Bool
	var spinners sync.WaitGroup
	if busy {
		for range runtime.GOMAXPROCS(0) {
			spinners.Add(1)
			go func() {
				defer spinners.Done()
				for !stop.Load() {
				}
			}()
		}
	}
	buf := make([]byte, 16)

	s.run(b, func() error { return prod.Emit(buf) })

	stop.Store(true)
	spinners.Wait()
	cancel()
	if err := <-runErr; err != nil && err != context.Canceled {
		b.Fatal(err)
	}
	w.Stop()
}
