package ringbuf_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// hangGuard bounds how long a test drives a loop waiting for records that
// should already have arrived. It guards against hangs; nothing is timed.
const hangGuard = 10 * time.Second

// A perf reader, a ring buffer reader, a timer and a posted task share one
// loop.Loop while BPF programs write records on every CPU, and every record
// the kernel wrote is delivered exactly once, in per-CPU order: with the
// loop run by Run, where the watchers on the readers' descriptors are all
// it takes, and with the loop embedded in an outer poller that polls l.Fd()
// before each RunNoWait. The outer poll checks readiness through the loop's
// epoll into the perf events inside the perf reader's Fd, and a perf event
// reports each wakeup to the first check only, so there the loop's watcher
// may not fire; the wakeup still brings the host to run the loop, and a
// check hook drains what Pending reports, as PerfReader.Fd documents for
// embedded loops. The timer fires once, early, so that no periodic wakeup
// can stand in for a lost one: a lost wakeup stalls the test.
func TestLoopDeliversEveryRecordOnce(t *testing.T) {
	for _, mode := range []string{"Run", "Embedded"} {
		t.Run(mode, func(t *testing.T) { testLoopDelivery(t, mode == "Embedded") })
	}
}

func testLoopDelivery(t *testing.T, embedded bool) {
	bpftest.Require(t)
	const (
		recordSize = 16
		rounds     = 25
		perRound   = 4 // records per CPU, and ring records, per round
	)
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
	perfProd, err := bpftest.NewPerfProducer(perfMap, recordSize)
	if err != nil {
		t.Fatal(err)
	}
	defer perfProd.Close()
	ringProd, err := bpftest.NewRingProducer(ringMap, recordSize)
	if err != nil {
		t.Fatal(err)
	}
	defer ringProd.Close()

	before := leakcheck.Take()
	pr, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := ringbuf.NewRingReader(ringMap.FD())
	if err != nil {
		t.Fatal(err)
	}
	l, err := loop.New()
	if err != nil {
		t.Fatal(err)
	}
	cpus := pr.CPUs()

	// What the loop saw. Callbacks run on the goroutine driving the loop.
	nextPerf := map[int]int{} // per CPU: next sequence number expected
	nextRing, ticks, posted := 0, 0, 0
	var fail error
	failf := func(format string, args ...any) {
		if fail == nil {
			fail = fmt.Errorf(format, args...)
		}
	}

	// The kernel writes the records in rounds while the loop runs: a
	// goroutine per CPU, pinned to it, and one for the ring buffer each
	// emit perRound records, then wait until the loop has delivered the
	// whole round. So every round's wakeups reach a loop that is asleep (in
	// Run, or in the outer poller's wait), and one lost wakeup stalls the
	// test instead of being covered by the next round's.
	gates := make([]chan struct{}, rounds)
	for i := range gates {
		gates[i] = make(chan struct{})
	}
	abort := make(chan struct{})
	roundsDone := 0
	checkRound := func() {
		for roundsDone < rounds {
			want := (roundsDone + 1) * perRound
			if nextRing < want {
				return
			}
			for _, cpu := range cpus {
				if nextPerf[cpu] < want {
					return
				}
			}
			close(gates[roundsDone])
			roundsDone++
		}
	}

	perfHandler := ringbuf.Handler{
		Sample: func(cpu int, d []byte) {
			c, seq := int(u32(d)), int(u32(d[4:]))
			if c != cpu || seq != nextPerf[cpu] {
				failf("perf: record %d of CPU %d delivered on CPU %d, expected record %d", seq, c, cpu, nextPerf[cpu])
			}
			nextPerf[cpu] = seq + 1
		},
		Lost: func(cpu int, n uint64) { failf("perf: CPU %d lost %d records", cpu, n) },
	}
	ringFn := func(d []byte) {
		if seq := int(u32(d[4:])); seq != nextRing {
			failf("ring: record %d, expected %d", seq, nextRing)
		}
		nextRing++
	}
	pw, err := l.Watch(pr.Fd(), poller.Readable, func(poller.Events) {
		if _, err := pr.Consume(perfHandler); err != nil {
			failf("perf Consume: %v", err)
		}
		checkRound()
	})
	if err != nil {
		t.Fatal(err)
	}
	rw, err := l.Watch(rr.Fd(), poller.Readable, func(poller.Events) {
		if _, err := rr.Consume(ringFn); err != nil {
			failf("ring Consume: %v", err)
		}
		checkRound()
	})
	if err != nil {
		t.Fatal(err)
	}
	timer := l.NewTimer(func() { ticks++ })
	if err := timer.Start(time.Millisecond, 0); err != nil {
		t.Fatal(err)
	}
	var drain *loop.Hook
	if embedded {
		drain = l.NewCheck(func() {
			if pr.Pending() {
				if _, err := pr.Consume(perfHandler); err != nil {
					failf("perf Consume: %v", err)
				}
				checkRound()
			}
		})
		if err := drain.Start(); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	emit := func(p *bpftest.Producer, cpu int) {
		defer wg.Done()
		if cpu >= 0 {
			runtime.LockOSThread() // never unlocked: the pinned thread exits with the goroutine
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				t.Errorf("pin to CPU %d: %v", cpu, err)
				return
			}
		}
		buf := make([]byte, recordSize)
		seq := 0
		for round := 0; round < rounds; round++ {
			for k := 0; k < perRound; k++ {
				putU32(buf, uint32(cpu))
				putU32(buf[4:], uint32(seq))
				if ok, err := p.TryEmit(buf); err != nil || !ok {
					t.Errorf("CPU %d: emit %d: written %v, %v", cpu, seq, ok, err)
					return
				}
				seq++
			}
			select {
			case <-gates[round]:
			case <-abort:
				return
			}
		}
	}
	for _, cpu := range cpus {
		wg.Add(1)
		go emit(perfProd, cpu)
	}
	wg.Add(1)
	go emit(ringProd, -1)
	go func() {
		if err := l.Post(func() { posted++ }); err != nil {
			t.Error(err)
		}
	}()

	done := func() bool {
		return fail != nil || (roundsDone == rounds && posted > 0 && ticks > 0)
	}
	if embedded {
		driveEmbedded(t, l, done)
	} else {
		stopper := l.NewCheck(func() {
			if done() {
				l.Stop()
			}
		})
		if err := stopper.Start(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		err := l.Run(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		}
		stopper.Stop()
	}
	close(abort)
	wg.Wait()

	if fail != nil {
		t.Error(fail)
	}
	if roundsDone != rounds {
		t.Errorf("the loop delivered %d of %d rounds", roundsDone, rounds)
	}
	for _, cpu := range cpus {
		if nextPerf[cpu] != rounds*perRound {
			t.Errorf("CPU %d: %d of %d perf records delivered", cpu, nextPerf[cpu], rounds*perRound)
		}
	}
	if nextRing != rounds*perRound {
		t.Errorf("%d of %d ring records delivered", nextRing, rounds*perRound)
	}
	// Nothing is left over to be delivered a second time.
	if n, err := pr.Consume(perfHandler); n != 0 || err != nil {
		t.Errorf("perf Consume after the run = %d, %v", n, err)
	}
	if n, err := rr.Consume(ringFn); n != 0 || err != nil {
		t.Errorf("ring Consume after the run = %d, %v", n, err)
	}
	if posted != 1 || ticks == 0 {
		t.Errorf("posted task ran %d times, timer fired %d times", posted, ticks)
	}
	if st := perfProd.Stats(); st.Dropped != 0 || pr.Stats().Samples != st.Written {
		t.Errorf("perf: kernel %+v, reader %+v", st, pr.Stats())
	}
	if st := ringProd.Stats(); st.Dropped != 0 || rr.Stats().Records != st.Written {
		t.Errorf("ring: kernel %+v, reader %+v", st, rr.Stats())
	}

	timer.Stop()
	if drain != nil {
		drain.Stop()
	}
	pw.Stop()
	rw.Stop()
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	if err := pr.Close(); err != nil {
		t.Error(err)
	}
	if err := rr.Close(); err != nil {
		t.Error(err)
	}
	for _, cpu := range cpus {
		if _, err := perfMap.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
			t.Errorf("perf slot %d after Close: %v", cpu, err)
		}
	}
	before.Check(t)
}

// driveEmbedded runs l the way a host event loop embedding it does: wait on
// l.Fd() in an outer poller for at most l.BackendTimeout(), then RunNoWait.
func driveEmbedded(t *testing.T, l *loop.Loop, done func() bool) {
	t.Helper()
	outer, err := poller.New()
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	if err := outer.Add(l.Fd(), poller.Readable, 1); err != nil {
		t.Fatal(err)
	}
	events := make([]poller.Event, 1)
	deadline := time.Now().Add(hangGuard)
	for !done() && time.Now().Before(deadline) {
		d := l.BackendTimeout()
		if d < 0 || d > time.Until(deadline) {
			d = max(time.Until(deadline), 0)
		}
		if _, err := outer.Wait(events, d); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RunNoWait(); err != nil {
			t.Fatal(err)
		}
	}
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func u32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
