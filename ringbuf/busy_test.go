package ringbuf_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// TestDeliveryUnderBusyRuntime: with every P of the Go runtime taken by a
// spinning goroutine, a loop watching a PerfReader's and a RingReader's
// descriptors still receives every record, each written only after the
// previous one was delivered, so that each needs its own wakeup. Nothing
// is timed (bench's BenchmarkBusyWakeup measures the latency); the
// deadline only guards against a hang.
func TestDeliveryUnderBusyRuntime(t *testing.T) {
	bpftest.Require(t)
	const perSource = 20
	perfMap, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		t.Fatal(err)
	}
	defer perfMap.Close()
	ringMap, err := bpftest.NewRingBuf(1 << 16)
	if err != nil {
		t.Fatal(err)
	}
	defer ringMap.Close()
	perfProd, err := bpftest.NewPerfProducer(perfMap, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer perfProd.Close()
	ringProd, err := bpftest.NewRingProducer(ringMap, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer ringProd.Close()
	pr, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	rr, err := ringbuf.NewRingReader(ringMap.FD())
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	delivered := make(chan int, 1) // sequence numbers, from the loop
	pw, err := l.Watch(pr.Fd(), poller.Readable, func(poller.Events) {
		if _, err := pr.Consume(ringbuf.Handler{Sample: func(_ int, d []byte) { delivered <- int(u32(d[4:])) }}); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := l.Watch(rr.Fd(), poller.Readable, func(poller.Events) {
		if _, err := rr.Consume(func(d []byte) { delivered <- int(u32(d[4:])) }); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- l.Run(ctx) }()

	var stop atomic.Bool
	var spinners sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		spinners.Add(1)
		go func() {
			defer spinners.Done()
			for !stop.Load() {
			}
		}()
	}
	deadline := time.After(30 * time.Second)
	emitAndWait := func(p *bpftest.Producer, cpu, seq int) bool {
		buf := make([]byte, 16)
		putU32(buf, uint32(cpu))
		putU32(buf[4:], uint32(seq))
		errc := make(chan error, 1)
		go func() {
			if cpu >= 0 {
				runtime.LockOSThread() // never unlocked: the pinned thread exits with the goroutine
				var set unix.CPUSet
				set.Set(cpu)
				if err := unix.SchedSetaffinity(0, &set); err != nil {
					errc <- err
					return
				}
			}
			errc <- p.Emit(buf)
		}()
		if err := <-errc; err != nil {
			t.Errorf("emit %d: %v", seq, err)
			return false
		}
		select {
		case got := <-delivered:
			if got != seq {
				t.Errorf("delivered record %d, want %d", got, seq)
				return false
			}
			return true
		case <-deadline:
			t.Errorf("record %d not delivered", seq)
			return false
		}
	}
	seq := 0
	ok := true
	for i := 0; i < perSource && ok; i++ {
		for _, cpu := range pr.CPUs() {
			if ok = emitAndWait(perfProd, cpu, seq); !ok {
				break
			}
			seq++
		}
		if ok = ok && emitAndWait(ringProd, -1, seq); ok {
			seq++
		}
	}
	stop.Store(true)
	spinners.Wait()
	cancel()
	if err := <-ran; err != nil && err != context.Canceled {
		t.Error(err)
	}
	pw.Stop()
	rw.Stop()
	if st := pr.Stats(); ok && st.Samples != uint64(perSource*len(pr.CPUs())) {
		t.Errorf("perf: %+v", st)
	}
}
