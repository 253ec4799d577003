package eventpipe

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// BenchmarkSimOverhead is bench's BenchmarkPipeOverhead in memory: the
// pipe (unordered or ordered, drained as its wakeup drains it) against the
// bare reader with a Dispatcher, each on a simulated ring of its own of
// overheadPages pages (as large as bench's kernel rings), filled and
// drained in turn, the order swapped every round; the ratio is the median
// over the rounds of the pipe's drain time over the reader's. Without the
// kernel, the loop or a cache made cold by the kernel's writes, it is the
// cost per record of dispatch and ordering alone. bare-timed-vs-bare is
// the cost of the timestamps' 8 bytes a record, which ordering needs.
func BenchmarkSimOverhead(b *testing.B) {
	for _, c := range []struct{ name, base, impl string }{
		{"pipe-vs-bare", "bare", "pipe"},
		{"ordered-vs-bare", "bare", "pipe-ordered"},
		{"ordered-vs-bare-timed", "bare-timed", "pipe-ordered"},
		{"bare-timed-vs-bare", "bare", "bare-timed"},
	} {
		b.Run(c.name, func(b *testing.B) {
			base, impl := newOverheadSide(b, c.base), newOverheadSide(b, c.impl)
			var ratios []float64
			for done, round := 0, 0; done < b.N; round++ {
				k := min(overheadBatch, b.N-done)
				var tb, ti time.Duration
				if round%2 == 0 {
					tb = base.fillAndDrain(b, k)
					ti = impl.fillAndDrain(b, k)
				} else {
					ti = impl.fillAndDrain(b, k)
					tb = base.fillAndDrain(b, k)
				}
				ratios = append(ratios, float64(ti)/float64(tb))
				done += k
			}
			b.StopTimer()
			base.verify(b)
			impl.verify(b)
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "ratio")
		})
	}
}

const (
	overheadPages = 64
	overheadBatch = 2900 // what a ring of overheadPages holds, timestamped
)

// overheadSide is one side of BenchmarkSimOverhead: a simulated ring and
// what drains it.
type overheadSide struct {
	sim   *ringbuf.PerfSim
	drain func()
	seq   uint32 // the next record's sequence number
	got   uint32 // records delivered
	bad   int    // records out of sequence
	cat   [categorySize]byte
	body  [60]byte
}

func newOverheadSide(b *testing.B, impl string) *overheadSide {
	timed := impl == "bare-timed" || impl == "pipe-ordered"
	sim, err := ringbuf.NewPerfSim(1, overheadPages, timed)
	if err != nil {
		b.Fatal(err)
	}
	s := &overheadSide{sim: sim}
	handle := func(payload []byte) {
		if binary.LittleEndian.Uint32(payload) != s.got {
			s.bad++
		}
		s.got++
	}
	switch impl {
	case "bare", "bare-timed":
		b.Cleanup(func() { sim.Close() })
		d := ringbuf.NewDispatcher()
		for range 4 {
			d.Register(func(_ int, payload []byte) { handle(payload) })
		}
		h := ringbuf.Handler{Sample: d.Sample}
		s.drain = func() {
			if _, err := sim.Consume(h); err != nil {
				b.Fatal(err)
			}
		}
	case "pipe", "pipe-ordered":
		l := newLoop(b)
		p := newPipe(b, l, Options{Ordered: impl == "pipe-ordered"})
		for range 4 {
			p.Register(func(ev Event) { handle(ev.Payload) })
		}
		// The sim as AttachSim adds it, with bench's ring size.
		src := &perfSource{rings: sim, mapFD: -1}
		if p.opts.Ordered {
			p.addHeads(src)
		}
		p.perf = append(p.perf, src)
		s.drain = p.onKick
		b.Cleanup(func() { closePipe(b, l, p) })
	default:
		b.Fatalf("unknown side %q", impl)
	}
	return s
}

// fillAndDrain writes k records (category seq%4, then seq) and times their
// drain.
func (s *overheadSide) fillAndDrain(b *testing.B, k int) time.Duration {
	for range k {
		binary.LittleEndian.PutUint32(s.cat[:], s.seq%4)
		binary.LittleEndian.PutUint32(s.body[:], s.seq)
		if err := s.sim.Sample(0, uint64(s.seq)+1, s.cat[:], s.body[:]); err != nil {
			b.Fatal(err)
		}
		s.seq++
	}
	start := time.Now()
	s.drain()
	return time.Since(start)
}

func (s *overheadSide) verify(b *testing.B) {
	if s.bad != 0 || s.got != s.seq {
		b.Fatalf("delivered %d of %d records, %d out of sequence", s.got, s.seq, s.bad)
	}
}
