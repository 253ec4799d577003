package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/perf"
	ciliumringbuf "github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkPipeOverhead measures the pipe's overhead against the bare
// reader fill by fill, for a machine whose speed drifts between runs: both
// sides read perf arrays of their own (each with its producer, ring and
// reader), and each round of the benchmark fills one side's rings and
// drains them, then the other's, the order swapped every round; the
// ratio reported is the median over the rounds of impl's drain time over
// base's. The two drains of a round are tens of milliseconds apart, where
// separate benchmark runs are seconds or minutes apart. The sides are
// BenchmarkPipeDrain's and BenchmarkPipeDrainAcrossCPUs' (same records,
// same checks; the ordered pipe across CPUs with a 1 µs ReorderWindow, for
// the reason given there). One op is one record of each side.
//
// Each drain is also split in two (see span): from its first record's
// handler to its last's, whose median ratio is span-ratio (the cost per
// record, dispatch and ordering included), and the rest, the drain's
// fixed cost (base-fixed-µs, impl-fixed-µs: medians per drain): for the
// pipe, a loop iteration, the readers' claims and the first look at each
// ring, paid once per wakeup however many records it brings. The
// bare-vs-bare rows pair a side with a copy of itself: what they report
// beside 1 is the method's own spread.
//
// The bare sides call Consume directly, with no loop and no wait: the
// pipe's rows against them count its loop iteration (an epoll_wait, the
// loop's hooks) as overhead. The -loop sides are the bare reader as a
// user wires it by hand on a loop (the reader's fd watched, Consume and a
// Dispatcher in the callback, what the pipe replaces), so the rows
// against them leave only dispatch and ordering.
//
// cilium's ring-buffer reader waits (epoll_wait) only once it has found
// the ring empty. A drain that stops at the k records of its fill never
// finds it empty, so the next drain would read on with no wait at all,
// as the bare side does: the ring cilium-switch side therefore reads to
// the empty ring after each drain, untimed, and its next drain begins
// with the one wait a reader in use makes per wakeup (cilium's perf
// reader makes it anyway). cilium-switch-nowait is the side without it.
func BenchmarkPipeOverhead(b *testing.B) {
	for _, c := range []struct {
		name, base, impl string
		cpus             int
	}{
		{"perf/bare-vs-bare", "bare", "bare", 1},
		{"perf/bare-timed-vs-bare-timed", "bare-timed", "bare-timed", 1},
		{"perf/bare-loop-vs-bare", "bare", "bare-loop", 1},
		{"perf/pipe-vs-bare-loop", "bare-loop", "pipe", 1},
		{"perf/ordered-vs-bare-loop", "bare-loop", "pipe-ordered", 1},
		{"perf/ordered-vs-bare-timed-loop", "bare-timed-loop", "pipe-ordered", 1},
		{"perf/pipe-vs-bare", "bare", "pipe", 1},
		{"perf/ordered-vs-bare", "bare", "pipe-ordered", 1},
		{"perf/ordered-vs-bare-timed", "bare-timed", "pipe-ordered", 1},
		{"perf-2cpu/ordered-vs-bare-timed", "bare-timed", "pipe-ordered", 2},
		{"perf/cilium-switch-vs-pipe", "pipe", "cilium-switch", 1},
		{"perf/cilium-switch-vs-ordered", "pipe-ordered", "cilium-switch", 1},
		{"ring/pipe-vs-bare", "ring-bare", "ring-pipe", 1},
		{"ring/pipe-vs-bare-loop", "ring-bare-loop", "ring-pipe", 1},
		{"ring/cilium-switch-vs-pipe", "ring-pipe", "ring-cilium-switch", 1},
		{"ring/cilium-switch-nowait-vs-pipe", "ring-pipe", "ring-cilium-switch-nowait", 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.cpus == 2 && runtime.NumCPU() < 2 {
				b.Skip("needs two CPUs")
			}
			base := newPipeSide(b, c.base, c.cpus)
			impl := newPipeSide(b, c.impl, c.cpus)
			capacity := min(base.capacity, impl.capacity)
			var ratios, spanRatios, baseFixed, implFixed []float64
			var baseTime, implTime time.Duration
			b.ResetTimer()
			for done, round := 0, 0; done < b.N; round++ {
				k := min(capacity, b.N-done)
				first, second := base, impl
				if round%2 == 1 {
					first, second = impl, base
				}
				d1 := first.fillAndDrain(k)
				d2 := second.fillAndDrain(k)
				db, di := d1, d2
				if first == impl {
					db, di = d2, d1
				}
				baseTime += db.total
				implTime += di.total
				ratios = append(ratios, float64(di.total)/float64(db.total))
				if k > 1 {
					spanRatios = append(spanRatios, float64(di.span)/float64(db.span))
				}
				baseFixed = append(baseFixed, float64(db.total-db.span))
				implFixed = append(implFixed, float64(di.total-di.span))
				done += k
			}
			b.StopTimer()
			base.verify(b.N)
			impl.verify(b.N)
			b.ReportMetric(median(ratios), "ratio")
			b.ReportMetric(float64(baseTime.Nanoseconds())/float64(b.N), "base-ns/record")
			b.ReportMetric(float64(implTime.Nanoseconds())/float64(b.N), "impl-ns/record")
			if len(spanRatios) > 0 {
				b.ReportMetric(median(spanRatios), "span-ratio")
			}
			b.ReportMetric(median(baseFixed)/1e3, "base-fixed-µs")
			b.ReportMetric(median(implFixed)/1e3, "impl-fixed-µs")
		})
	}
}

// pipeSide is one side of BenchmarkPipeOverhead: a perf array, its
// producer, and a reader or pipe draining it.
type pipeSide struct {
	b        *testing.B
	rb       *ringBench
	cpus     int
	capacity int
	span     *span // the handlers' span of a drain
	drain    func(k int)
	settle   func() // if not nil, runs after each drain, untimed
	verify   func(n int)
}

func newPipeSide(b *testing.B, impl string, cpus int) *pipeSide {
	const size = 64
	if strings.HasPrefix(impl, "ring-") {
		return newRingSide(b, strings.TrimPrefix(impl, "ring-"), size)
	}
	m, rb := perfSetup(b, size)
	timed := strings.Contains(impl, "timed") || impl == "pipe-ordered"
	perRing := (ringPages*os.Getpagesize() - 1) / bpftest.PerfRecordLen(size)
	if timed {
		perRing = (ringPages*os.Getpagesize() - 1) / (bpftest.PerfRecordLen(size) + 8) // 8 more bytes of time
	}
	s := &pipeSide{b: b, rb: rb, cpus: cpus, capacity: perRing * cpus}
	opts := ringbuf.PerfOptions{PagesPerCPU: ringPages, CPUs: []int{emitCPU}, Timestamps: timed}
	if cpus == 2 {
		opts.CPUs = []int{0, 1}
	}
	// One CPU: every record in sequence (routed); two: each CPU's in its
	// order, and all of them for the ordered pipe (perCPU).
	r := &routed{}
	c := &perCPU{last: [2]int64{-1, -1}, lastAll: -1, ordered: impl == "pipe-ordered"}
	s.span = &r.span
	if cpus == 2 {
		s.span = &c.span
	}
	s.verify = func(n int) {
		if cpus == 1 {
			r.verify(b, n)
		} else if c.bad != 0 || c.n != n {
			b.Fatalf("%s: delivered %d records, want %d; %d out of order", impl, c.n, n, c.bad)
		}
	}
	switch impl {
	case "bare", "bare-timed", "bare-loop", "bare-timed-loop":
		pr, err := ringbuf.NewPerfReader(m.FD(), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pr.Close() })
		d := ringbuf.NewDispatcher()
		for range categories {
			cat := uint32(0)
			if cpus == 1 {
				cat = d.Register(func(_ int, payload []byte) { r.handle(cat, payload) })
			} else {
				d.Register(c.handle)
			}
		}
		h := ringbuf.Handler{Sample: d.Sample}
		consume := func() (int, error) { return pr.Consume(h) }
		if strings.HasSuffix(impl, "-loop") {
			s.drain = onLoop(b, pr.Fd(), consume)
		} else {
			s.drain = direct(b, consume)
		}
	case "pipe", "pipe-timed", "pipe-ordered":
		l, err := loop.New()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		po := eventpipe.Options{Ordered: impl == "pipe-ordered"}
		if cpus == 2 {
			po.ReorderWindow = time.Microsecond
		}
		p, err := eventpipe.New(l, po)
		if err != nil {
			b.Fatal(err)
		}
		for range categories {
			if cpus == 1 {
				p.Register(func(ev eventpipe.Event) { r.handle(ev.Category, ev.Payload) })
			} else {
				p.Register(func(ev eventpipe.Event) { c.handle(ev.CPU, ev.Payload) })
			}
		}
		if err := p.AttachPerf(m.FD(), opts); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { closePipe(b, l, p) })
		want := uint64(0)
		s.drain = func(k int) {
			want += uint64(k)
			drainPipe(b, l, p, want)
		}
	case "cilium-switch":
		if cpus != 1 {
			b.Fatalf("%s: one CPU only", impl)
		}
		cm, err := ciliumMap(m.FD())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cm.Close() })
		// cilium's reader opens its own events, untimed (time is not among
		// its options): against the ordered pipe it reads the records a
		// cilium user gets, in per-CPU order only.
		cr, err := perf.NewReader(cm, ringPages*os.Getpagesize())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cr.Close() })
		var rec perf.Record
		s.drain = func(k int) {
			for range k {
				if err := cr.ReadInto(&rec); err != nil {
					b.Fatal(err)
				}
				switchRoute(r, rec.RawSample)
			}
		}
	default:
		b.Fatalf("unknown side %q", impl)
	}
	return s
}

// newRingSide is newPipeSide for a BPF ring buffer: the bare RingReader
// with a Dispatcher, the pipe, or cilium's reader with the switch.
func newRingSide(b *testing.B, impl string, size int) *pipeSide {
	m, rb := ringSetup(b, size)
	r := &routed{}
	s := &pipeSide{b: b, rb: rb, cpus: 1, capacity: rb.capacity, span: &r.span, verify: func(n int) { r.verify(b, n) }}
	switch impl {
	case "bare", "bare-loop":
		rr, err := ringbuf.NewRingReader(m.FD())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rr.Close() })
		d := ringbuf.NewDispatcher()
		for range categories {
			cat := uint32(0)
			cat = d.Register(func(_ int, payload []byte) { r.handle(cat, payload) })
		}
		consume := func() (int, error) { return rr.Consume(d.Record) }
		if impl == "bare-loop" {
			s.drain = onLoop(b, rr.Fd(), consume)
		} else {
			s.drain = direct(b, consume)
		}
	case "pipe":
		l, p := pipeFor(b, eventpipe.Options{}, r)
		if err := p.AttachRing(m.FD()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { closePipe(b, l, p) })
		want := uint64(0)
		s.drain = func(k int) {
			want += uint64(k)
			drainPipe(b, l, p, want)
		}
	case "cilium-switch", "cilium-switch-nowait":
		cm, err := ciliumMap(m.FD())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cm.Close() })
		cr, err := ciliumringbuf.NewReader(cm)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cr.Close() })
		var rec ciliumringbuf.Record
		s.drain = func(k int) {
			for range k {
				if err := cr.ReadInto(&rec); err != nil {
					b.Fatal(err)
				}
				switchRoute(r, rec.RawSample)
			}
		}
		if impl == "cilium-switch" {
			s.settle = func() {
				cr.SetDeadline(time.Now())
				if err := cr.ReadInto(&rec); !errors.Is(err, os.ErrDeadlineExceeded) {
					b.Fatalf("reading past the fill: %v, want a deadline", err)
				}
				cr.SetDeadline(time.Time{})
			}
		}
	default:
		b.Fatalf("unknown ring side %q", impl)
	}
	return s
}

// direct drains k records by calling consume until it has them.
func direct(b *testing.B, consume func() (int, error)) func(k int) {
	return func(k int) {
		for got := 0; got < k; {
			n, err := consume()
			if err != nil || n == 0 {
				b.Fatalf("Consume: %d, %v", n, err)
			}
			got += n
		}
	}
}

// onLoop drains k records as a user of the bare reader does on a loop:
// consume runs when the loop finds the reader's fd readable.
func onLoop(b *testing.B, fd int, consume func() (int, error)) func(k int) {
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	got := 0
	w, err := l.Watch(fd, poller.Readable, func(poller.Events) {
		n, err := consume()
		if err != nil {
			b.Errorf("Consume: %v", err)
		}
		got += n
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		w.Close(nil)
		if err := l.Run(context.Background()); err != nil {
			b.Error(err)
		}
	})
	want := 0
	return func(k int) {
		want += k
		for got < want {
			if _, err := l.RunOnce(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// fill has the kernel write k records (category seq%4, then seq; with two
// CPUs, record i on CPU i%2).
func (s *pipeSide) fill(k int) {
	rb := s.rb
	for i := range k {
		if s.cpus == 2 {
			setCPU(s.b, i%2)
		}
		seq := uint32(rb.emitted)
		binary.LittleEndian.PutUint32(rb.payload, seq%categories)
		binary.LittleEndian.PutUint32(rb.payload[4:], seq)
		if ok, err := rb.producer.TryEmit(rb.payload); err != nil || !ok {
			s.b.Fatalf("emit %d of a fill of %d: %v, %v", seq, k, ok, err)
		}
		rb.emitted++
	}
	if s.cpus == 2 {
		setCPU(s.b, emitCPU)
	}
}

// drainTime is how long a drain took, and how much of it lay between its
// first record's handler and its last's (see span).
type drainTime struct{ total, span time.Duration }

// fillAndDrain fills k records and times their drain.
func (s *pipeSide) fillAndDrain(k int) drainTime {
	s.fill(k)
	s.span.start(k)
	start := time.Now()
	s.drain(k)
	d := drainTime{total: time.Since(start), span: s.span.length()}
	if s.settle != nil {
		s.settle()
	}
	return d
}

// median returns the median of xs, which it sorts.
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// setCPU moves the calling thread (locked by perfSetup) to cpu.
func setCPU(b *testing.B, cpu int) {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		b.Fatal(err)
	}
}
