package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkPipeDrain measures records/s through an EventPipe against the
// bare readers (the cost of dispatch and, ordered, of the merge; target
// overhead 15 %) and against cilium/ebpf's readers with a hand-written
// category switch (target: 3x faster). Each record is a 4-byte category
// (one of four) and a sequence number; every implementation routes it to
// the category's handler, which checks the sequence. The kernel fills the
// ring with the timer stopped, as in BenchmarkPerfDrain; our readers read
// the emitting CPU's ring only. One op is one record.
func BenchmarkPipeDrain(b *testing.B) {
	for _, impl := range []string{"bare", "bare-timed", "pipe", "pipe-timed", "pipe-ordered", "cilium-switch"} {
		b.Run(fmt.Sprintf("source=perf/impl=%s", impl), func(b *testing.B) { benchSide(b, impl, 1) })
	}
	for _, impl := range []string{"bare", "pipe", "cilium-switch"} {
		b.Run(fmt.Sprintf("source=ring/impl=%s", impl), func(b *testing.B) { benchSide(b, "ring-"+impl, 1) })
	}
}

const categories = 4

// routed counts the records each category's handler saw and checks their
// sequence numbers, which run on across categories.
type routed struct {
	next uint32
	bad  int
	per  [categories]int
	span span
}

func (r *routed) handle(cat uint32, payload []byte) {
	r.span.mark()
	if binary.LittleEndian.Uint32(payload) != r.next {
		r.bad++
	}
	r.per[cat]++
	r.next++
}

// span times a drain from its first record's handler to its last's,
// leaving out what the drain costs before the first record and after the
// last (a poll, the readers' claims, the first look at each ring): what
// BenchmarkPipeOverhead reports as a drain's fixed cost. It costs the
// handler one comparison per record, on every side alike.
type span struct {
	seen, at, end int // records seen in this drain; the next to stamp; the last
	first, last   time.Time
}

// start begins the span of a drain of k records.
func (s *span) start(k int) { s.seen, s.at, s.end = 0, 0, k-1 }

func (s *span) mark() {
	if s.seen == s.at {
		s.stamp()
	}
	s.seen++
}

// stamp takes the time at the first record and at the last (one reading
// when they are the same record) and sets at to the next record to stamp.
func (s *span) stamp() {
	now := time.Now()
	if s.seen == 0 {
		s.first = now
	}
	if s.seen == s.end {
		s.last, s.at = now, -1
	} else {
		s.at = s.end
	}
}

// length is the time from the first record of the drain to the last.
func (s *span) length() time.Duration { return s.last.Sub(s.first) }

func (r *routed) verify(b *testing.B, want int) {
	b.Helper()
	if r.bad != 0 || int(r.next) != want {
		b.Fatalf("routed %d records, want %d; %d out of sequence", r.next, want, r.bad)
	}
}

// benchSide fills impl's rings (BenchmarkPipeOverhead's sides) with the
// timer stopped and times their drains. One op is one record.
func benchSide(b *testing.B, impl string, cpus int) {
	s := newPipeSide(b, impl, cpus)
	b.StopTimer()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(s.capacity, b.N-done)
		s.fill(k)
		b.StartTimer()
		s.drain(k)
		b.StopTimer()
		done += k
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
	s.verify(b.N)
}

// pipeFor makes a pipe on a new loop with one category handler per
// category, all feeding r.
func pipeFor(b *testing.B, opts eventpipe.Options, r *routed) (*loop.Loop, *eventpipe.Pipe) {
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	p, err := eventpipe.New(l, opts)
	if err != nil {
		b.Fatal(err)
	}
	for range categories {
		cat := uint32(0)
		cat = p.Register(func(ev eventpipe.Event) { r.handle(ev.Category, ev.Payload) })
		_ = cat
	}
	return l, p
}

// drainPipe runs the loop until the pipe has delivered want records.
func drainPipe(b *testing.B, l *loop.Loop, p *eventpipe.Pipe, want uint64) {
	for p.Stats().Delivered < want {
		if _, err := l.RunOnce(); err != nil {
			b.Fatal(err)
		}
	}
}

func closePipe(b *testing.B, l *loop.Loop, p *eventpipe.Pipe) {
	p.Close(nil)
	if err := l.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// switchRoute is the hand-written dispatch a cilium/ebpf user writes.
func switchRoute(r *routed, rec []byte) {
	if len(rec) < 4 {
		r.bad++
		return
	}
	switch cat := binary.LittleEndian.Uint32(rec); cat {
	case 0, 1, 2, 3:
		r.handle(cat, rec[4:])
	default:
		r.bad++
	}
}

// BenchmarkPipeMaxLatency measures the delay from the kernel's write of a
// perf record to its handler when the kernel never wakes the reader
// (WakeupEvents far above the rate) and MaxLatency (5 ms) alone brings the
// records in: at a low rate (one record per millisecond) and a high one
// (bursts of 100). The delay is the handler's CLOCK_MONOTONIC minus the
// record's kernel timestamp (an Ordered pipe, whose only ring is the
// emitting CPU's, so nothing waits for the reorder window).
func BenchmarkPipeMaxLatency(b *testing.B) {
	for _, rate := range []string{"low", "high"} {
		b.Run("rate="+rate, func(b *testing.B) { benchMaxLatency(b, rate == "high") })
	}
}

func benchMaxLatency(b *testing.B, high bool) {
	bpftest.Require(b)
	m, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	prod, err := bpftest.NewPerfProducer(m, 16)
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	p, err := eventpipe.New(l, eventpipe.Options{MaxLatency: 5 * time.Millisecond, Ordered: true})
	if err != nil {
		b.Fatal(err)
	}
	samples := make([]int64, 0, b.N)
	p.Register(func(ev eventpipe.Event) {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		samples = append(samples, ts.Nano()-int64(ev.Time))
	})
	if err := p.AttachPerf(m.FD(), ringbuf.PerfOptions{WakeupEvents: 1 << 20, CPUs: []int{emitCPU}}); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer pinToCPU(b, emitCPU)()
		buf := make([]byte, 16)
		for i := 0; i < b.N; i++ {
			if err := prod.Emit(buf); err != nil {
				done <- err
				return
			}
			if !high {
				time.Sleep(time.Millisecond)
			} else if i%100 == 99 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	poke := l.NewTimer(func() {})
	if err := poke.Start(time.Millisecond, time.Millisecond); err != nil {
		b.Fatal(err)
	}
	var emitErr error
	emitted := false
	for !emitted || len(samples) < b.N {
		if !emitted {
			select {
			case emitErr = <-done:
				emitted = true
			default:
			}
		}
		if emitErr != nil {
			b.Fatal(emitErr)
		}
		if _, err := l.RunOnce(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	poke.Close(nil)
	closePipe(b, l, p)
	reportLatency(b, samples)
}

// BenchmarkPipeDrainAcrossCPUs is BenchmarkPipeDrain's perf rows with the
// records on two CPUs, strictly alternating (the kernel writes record i on
// CPU i%2, the filling thread moved between them): the shape where the
// ordered merge cannot deliver a run of one ring and steps between the
// rings at every record. The bare reader drains one ring after the other
// (per-CPU order only, which is what its handler checks), the ordered
// pipe merges them (global order, checked). The pipe's ReorderWindow is
// 1 µs: at the end of each fill one ring runs dry before the other, and
// its last records would wait the window (by design: the dry CPU could
// still be writing an older one), which would measure the window, not
// the merge; every record is older than 1 µs by the time the drain runs.
// One op is one record.
func BenchmarkPipeDrainAcrossCPUs(b *testing.B) {
	if runtime.NumCPU() < 2 {
		b.Skip("needs two CPUs")
	}
	for _, impl := range []string{"bare-timed", "pipe-ordered"} {
		b.Run(fmt.Sprintf("source=perf/impl=%s", impl), func(b *testing.B) { benchSide(b, impl, 2) })
	}
}

// perCPU checks that each CPU's records come in the order they were
// written, and (ordered) that they all do.
type perCPU struct {
	last    [2]int64
	lastAll int64
	ordered bool
	n, bad  int
	span    span
}

func (c *perCPU) handle(cpu int, payload []byte) {
	c.span.mark()
	seq := int64(binary.LittleEndian.Uint32(payload)) // after the category
	if cpu < 0 || cpu > 1 || seq <= c.last[cpu] || (c.ordered && seq <= c.lastAll) {
		c.bad++
	} else {
		c.last[cpu], c.lastAll = seq, seq
	}
	c.n++
}
