package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	ciliumringbuf "github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// ringPages is the data size, in pages, of every ring both readers get: one
// perf ring per CPU of that size, or one BPF ring buffer.
const ringPages = 64

// emitCPU is the CPU the benchmark thread is pinned to while the kernel
// writes records, so that every perf record lands in that CPU's ring.
const emitCPU = 0

var recordSizes = []int{64, 256}

// BenchmarkPerfDrain measures draining records the kernel wrote into a perf
// event ring through a BPF socket filter (bpf_perf_event_output): our
// PerfReader.Consume against cilium/ebpf's perf.Reader.ReadInto and libbpf's
// perf_buffer__consume (see libbpf_test.go), alternated in one run, on the
// same record sizes and ring size, with a bare Go loop (bare_test.go) as
// the Go floor. One op is one record. The kernel fills the ring
// with the timer stopped; the timer runs only while the reader drains what
// was written. Each handler checks the CPU, the length and the sequence
// number of every record.
func BenchmarkPerfDrain(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("impl=cilium/record=%d", size), func(b *testing.B) { benchCiliumPerf(b, size) })
		b.Run(fmt.Sprintf("impl=eventpipe/record=%d", size), func(b *testing.B) { benchOurPerf(b, size) })
		b.Run(fmt.Sprintf("impl=libbpf/record=%d", size), func(b *testing.B) { benchLibbpfPerf(b, size) })
		b.Run(fmt.Sprintf("impl=bare/record=%d", size), func(b *testing.B) { benchBarePerf(b, size) })
	}
}

// BenchmarkRingDrain is BenchmarkPerfDrain for a BPF ring buffer
// (bpf_ringbuf_output): our RingReader.Consume, and a RingBatch loop
// (eventpipe-batch: the handler called directly, no callback), against
// cilium/ebpf's ringbuf.Reader.ReadInto and libbpf's ring_buffer__consume.
func BenchmarkRingDrain(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("impl=cilium/record=%d", size), func(b *testing.B) { benchCiliumRing(b, size) })
		b.Run(fmt.Sprintf("impl=eventpipe/record=%d", size), func(b *testing.B) { benchOurRing(b, size, false) })
		b.Run(fmt.Sprintf("impl=eventpipe-batch/record=%d", size), func(b *testing.B) { benchOurRing(b, size, true) })
		b.Run(fmt.Sprintf("impl=libbpf/record=%d", size), func(b *testing.B) { benchLibbpfRing(b, size) })
		b.Run(fmt.Sprintf("impl=bare/record=%d", size), func(b *testing.B) { benchBareRing(b, size) })
	}
}

// checker verifies the records a reader hands over: each carries its
// sequence number in its first 8 bytes and has the expected length. Both
// readers' handlers do exactly this work per record.
type checker struct {
	size int    // expected length of each record's data
	next uint64 // sequence number of the next record
	bad  int    // records that were out of sequence or the wrong size
	cpu  int    // CPU of the last bad record, for the message
}

func (c *checker) check(cpu int, data []byte) {
	if cpu != emitCPU || len(data) != c.size || binary.LittleEndian.Uint64(data) != c.next {
		c.bad++
		c.cpu = cpu
	}
	c.next++
}

func (c *checker) verify(b *testing.B, want int) {
	b.Helper()
	if c.bad != 0 || c.next != uint64(want) {
		b.Fatalf("drained %d records, want %d; %d were out of sequence, of the wrong size (want %d) or from the wrong CPU (last %d)",
			c.next, want, c.bad, c.size, c.cpu)
	}
}

// ringBench runs the shared shape of the drain benchmarks: the thread is
// pinned to emitCPU; the kernel writes up to capacity records with the timer
// stopped, then drain(k) reads exactly those k records back with the timer
// running, until b.N records went through.
type ringBench struct {
	b        *testing.B
	producer *bpftest.Producer
	capacity int // records the ring holds when empty
	payload  []byte
	emitted  uint64
}

// fill makes the kernel write k records, numbered on from the last fill.
func (rb *ringBench) fill(k int) {
	for range k {
		binary.LittleEndian.PutUint64(rb.payload, rb.emitted)
		ok, err := rb.producer.TryEmit(rb.payload)
		if err != nil {
			rb.b.Fatal(err)
		}
		if !ok {
			rb.b.Fatalf("ring full after %d records of a fill of %d", rb.emitted, k)
		}
		rb.emitted++
	}
}

func (rb *ringBench) run(drain func(k int)) {
	b := rb.b
	b.StopTimer()
	b.ResetTimer()
	for done := 0; done < b.N; {
		k := min(rb.capacity, b.N-done)
		rb.fill(k)
		b.StartTimer()
		drain(k)
		b.StopTimer()
		done += k
	}
	// The same figure as ns/op, under the name the results use.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/record")
}

// perfSetup creates a perf event array, pins the thread, and returns the
// harness; the reader must be opened on the map before the first fill.
func perfSetup(b *testing.B, size int) (*bpftest.Map, *ringBench) {
	bpftest.Require(b)
	b.Cleanup(pinToCPU(b, emitCPU))
	m, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	p, err := bpftest.NewPerfProducer(m, size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	dataBytes := ringPages * os.Getpagesize()
	return m, &ringBench{
		b:        b,
		producer: p,
		capacity: (dataBytes - 1) / bpftest.PerfRecordLen(size),
		payload:  make([]byte, size),
	}
}

func benchOurPerf(b *testing.B, size int) {
	m, rb := perfSetup(b, size)
	r, err := ringbuf.NewPerfReader(m.FD(), ringbuf.PerfOptions{PagesPerCPU: ringPages})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := &checker{size: bpftest.PerfRawSize(size)}
	var lost uint64
	h := ringbuf.Handler{
		Sample: c.check,
		Lost:   func(cpu int, n uint64) { lost += n },
	}

	rb.run(func(k int) {
		for got := 0; got < k; {
			n, err := r.Consume(h)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("Consume found %d of %d records", got, k)
			}
			got += n
		}
	})

	c.verify(b, b.N)
	if lost != 0 {
		b.Fatalf("kernel lost %d records", lost)
	}
}

func benchCiliumPerf(b *testing.B, size int) {
	m, rb := perfSetup(b, size)
	cm, err := ciliumMap(m.FD())
	if err != nil {
		b.Fatal(err)
	}
	defer cm.Close()
	r, err := perf.NewReader(cm, ringPages*os.Getpagesize())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := &checker{size: bpftest.PerfRawSize(size)}
	var rec perf.Record

	rb.run(func(k int) {
		for range k {
			if err := r.ReadInto(&rec); err != nil {
				b.Fatal(err)
			}
			if rec.LostSamples != 0 {
				b.Fatalf("kernel lost %d records", rec.LostSamples)
			}
			c.check(rec.CPU, rec.RawSample)
		}
	})

	c.verify(b, b.N)
}

// ciliumMap wraps a duplicate of fd as a cilium/ebpf Map, which takes
// ownership of the descriptor it is given.
func ciliumMap(fd int) (*ebpf.Map, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup map fd: %w", err)
	}
	m, err := ebpf.NewMapFromFD(dup)
	if err != nil {
		unix.Close(dup)
		return nil, err
	}
	return m, nil
}

func ringSetup(b *testing.B, size int) (*bpftest.Map, *ringBench) {
	bpftest.Require(b)
	b.Cleanup(pinToCPU(b, emitCPU))
	dataBytes := ringPages * os.Getpagesize()
	m, err := bpftest.NewRingBuf(dataBytes)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	p, err := bpftest.NewRingProducer(m, size)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return m, &ringBench{
		b:        b,
		producer: p,
		capacity: dataBytes / bpftest.RingRecordLen(size),
		payload:  make([]byte, size),
	}
}

// benchOurRing drains with Consume, or with a RingBatch (batch).
func benchOurRing(b *testing.B, size int, batch bool) {
	m, rb := ringSetup(b, size)
	r, err := ringbuf.NewRingReader(m.FD())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := &checker{size: size}
	fn := func(data []byte) { c.check(emitCPU, data) }
	drain := func() (int, error) { return r.Consume(fn) }
	if batch {
		drain = func() (int, error) {
			bt, err := r.Begin()
			if err != nil {
				return 0, err
			}
			for bt.Next() {
				c.check(emitCPU, bt.Record())
			}
			return bt.End()
		}
	}

	rb.run(func(k int) {
		for got := 0; got < k; {
			n, err := drain()
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("a drain found %d of %d records", got, k)
			}
			got += n
		}
	})

	c.verify(b, b.N)
}

func benchCiliumRing(b *testing.B, size int) {
	m, rb := ringSetup(b, size)
	cm, err := ciliumMap(m.FD())
	if err != nil {
		b.Fatal(err)
	}
	defer cm.Close()
	r, err := ciliumringbuf.NewReader(cm)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c := &checker{size: size}
	var rec ciliumringbuf.Record

	rb.run(func(k int) {
		for range k {
			if err := r.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					b.Fatal("ring buffer ran dry")
				}
				b.Fatal(err)
			}
			c.check(emitCPU, rec.RawSample)
		}
	})

	c.verify(b, b.N)
}
