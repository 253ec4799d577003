package ringbuf

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"testing"
	"time"
)

// The per-record cost of the drain loops alone, on rings in ordinary
// memory: a ring is filled once with 64-byte records and drained again and
// again by moving the consumer position back, so no producer work and no
// system call is in the figure. ns/record is the figure to compare with
// bench's kernel-filled drains.

const drainBenchPayload = 64

// filledPerfRing is a 64 KiB perf ring full of drainBenchPayload-byte
// samples, published.
func filledPerfRing(b *testing.B) *simPerf {
	s := newSimPerf(b, 1<<16, 0)
	payload := payloadOf(1, drainBenchPayload)
	for s.sample(payload) {
	}
	s.lost = 0
	s.publish()
	return s
}

func BenchmarkPerfRingDrain(b *testing.B) {
	s := filledPerfRing(b)
	records := 0
	h := Handler{Sample: func(int, []byte) { records++ }}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atomic.StoreUint64(s.ring.tail, 0)
		if _, err := s.consume(h); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
}

func BenchmarkBPFRingDrain(b *testing.B) {
	s := newSimRing(b, 1<<16, 0)
	payload := payloadOf(1, drainBenchPayload)
	for s.output(payload) {
	}
	records := 0
	fn := func([]byte) { records++ }
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atomic.StoreUint64(s.ring.cons, 0)
		if _, err := s.consume(fn); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
}

// BenchmarkPerfRingRun is BenchmarkPerfRingDrain through ConsumeUntil's
// loop (the ordered merge's runs), on the same records, every one within
// the bound: the figure to compare with the drain's.
func BenchmarkPerfRingRun(b *testing.B) {
	s := filledPerfRing(b)
	records := 0
	h := Handler{SampleAt: func(int, uint64, []byte) { records++ }}
	var samples uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atomic.StoreUint64(s.ring.tail, 0)
		s.ring.sync()
		if _, _, err := s.ring.run(^uint64(0), false, &h, &s.c, &s.g, &samples, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
}

// BenchmarkBPFRingBatch is BenchmarkBPFRingDrain through a RingBatch: the
// handler's work is in the loop over Next, with no call per record.
func BenchmarkBPFRingBatch(b *testing.B) {
	s := newSimRing(b, 1<<16, 0)
	payload := payloadOf(1, drainBenchPayload)
	for s.output(payload) {
	}
	records := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atomic.StoreUint64(s.ring.cons, 0)
		batch := s.begin()
		for batch.Next() {
			records += len(batch.Record()) & 1
			records++
		}
		if _, err := batch.End(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
}

// BenchmarkBPFRingRoute is the shape of a pipe's drain of a ring buffer:
// records of four categories routed to a handler each, through Consume
// and a Dispatcher (two indirect calls per record) and through a batch
// with the category read in the loop (one). Each handler checks the
// record's sequence number, as bench's PipeDrain does.
func BenchmarkBPFRingRoute(b *testing.B) {
	type event struct {
		cat     uint32
		cpu     int
		at      uint64
		payload []byte
	}
	const categories = 4
	fill := func(b *testing.B) *simRing {
		s := newSimRing(b, 1<<16, 0)
		for seq := 0; ; seq++ {
			p := payloadOf(seq, drainBenchPayload)
			binary.LittleEndian.PutUint32(p, uint32(seq%categories))
			binary.LittleEndian.PutUint32(p[4:], uint32(seq))
			if !s.output(p) {
				return s
			}
		}
	}
	var next uint32
	var bad, records int
	check := func(payload []byte) {
		if binary.LittleEndian.Uint32(payload) != next {
			bad++
		}
		next++
	}
	// run times drain, which drains the ring once from its start.
	run := func(b *testing.B, drain func(s *simRing) (int, error)) {
		s := fill(b)
		next, bad, records = 0, 0, 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			atomic.StoreUint64(s.ring.cons, 0)
			next = 0
			n, err := drain(s)
			if err != nil {
				b.Fatal(err)
			}
			records += n
		}
		if bad != 0 {
			b.Fatalf("%d records out of sequence", bad)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	}
	b.Run("impl=consume", func(b *testing.B) {
		d := NewDispatcher()
		for range categories {
			d.Register(func(_ int, payload []byte) { check(payload) })
		}
		run(b, func(s *simRing) (int, error) { return s.consume(d.Record) })
	})
	b.Run("impl=batch", func(b *testing.B) {
		var handlers []func(event)
		for range categories {
			handlers = append(handlers, func(ev event) { check(ev.payload) })
		}
		run(b, func(s *simRing) (int, error) {
			batch := s.begin()
			for batch.Next() {
				rec := batch.Record()
				if len(rec) < 4 {
					bad++
					continue
				}
				cat := binary.LittleEndian.Uint32(rec)
				if uint64(cat) >= uint64(len(handlers)) {
					bad++
					continue
				}
				if fn := handlers[cat]; fn != nil {
					fn(event{cat: cat, cpu: -1, payload: rec[4:]})
				}
			}
			return batch.End()
		})
	})
}

// BenchmarkPerfRunVsConsume compares, in one process and alternately, the
// drain of a full timed ring by Consume and by one ConsumeUntil run in a
// session (the ordered merge's path for a burst from one CPU): the ratio
// is the run's time over Consume's.
func BenchmarkPerfRunVsConsume(b *testing.B) {
	sim, err := NewPerfSim(1, 64, true) // 256 KiB: more than L1 and L2 hold of it in one pass
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	payload := payloadOf(1, drainBenchPayload)
	for t := uint64(1); sim.Sample(0, t, payload, nil) == nil; t++ {
	}
	ring := sim.rings[0]
	sum := 0
	h := Handler{SampleAt: func(_ int, at uint64, d []byte) { sum += int(d[0]) + int(at&1) }}
	var consume, run time.Duration
	records := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		atomic.StoreUint64(ring.tail, 0)
		start := time.Now()
		n, err := sim.Consume(h)
		consume += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		records += n
		atomic.StoreUint64(ring.tail, 0)
		start = time.Now()
		if err := sim.Begin(); err != nil {
			b.Fatal(err)
		}
		m, _, err := sim.ConsumeUntil(0, math.MaxUint64, h, nil)
		if err := sim.End(); err != nil {
			b.Fatal(err)
		}
		run += time.Since(start)
		if err != nil || m != n {
			b.Fatalf("run: %d samples, %v; Consume: %d", m, err, n)
		}
	}
	b.ReportMetric(float64(consume.Nanoseconds())/float64(records), "consume-ns/record")
	b.ReportMetric(float64(run.Nanoseconds())/float64(records), "run-ns/record")
	b.ReportMetric(float64(run)/float64(consume), "ratio")
}
