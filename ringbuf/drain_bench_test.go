package ringbuf

import (
	"sync/atomic"
	"testing"
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
