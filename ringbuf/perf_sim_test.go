package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"unsafe"
)

// payloadOf returns n deterministic bytes tagged by seq, so a test can tell
// records apart and spot a torn or shifted one.
func payloadOf(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*31 + i*7 + 1)
	}
	if n >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(seq))
	}
	return b
}

// within reports whether b lies inside mem.
func within(b, mem []byte) bool {
	if len(b) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(&mem[0]))
	p := uintptr(unsafe.Pointer(&b[0]))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(mem))
}

func TestPerfRingWrapAtEveryOffset(t *testing.T) {
	for _, size := range []int{64, 256, 4096} {
		for _, n := range []int{0, 1, 4, 13, 20, 44, 52, 100, 1000, 4084} {
			rec := sampleRecordSize(n)
			if rec > size {
				continue
			}
			t.Run(fmt.Sprintf("ring%d/payload%d", size, n), func(t *testing.T) {
				want := payloadOf(n, n)
				wrapped := 0
				for off := 0; off < size; off += 8 {
					// Start several laps in, so positions are not ring offsets.
					s := newSimPerf(t, size, uint64(3*size+off))
					if !s.sample(want) {
						t.Fatalf("offset %d: no room", off)
					}
					s.publish()
					var got [][]byte
					n, err := s.consume(Handler{Sample: func(cpu int, data []byte) {
						if cpu != 7 {
							t.Errorf("cpu = %d, want 7", cpu)
						}
						contiguous := off+rec <= size
						if contiguous && !within(data, s.data) {
							t.Errorf("offset %d: contiguous record was copied", off)
						}
						if !contiguous && !within(data, s.ring.scratch) {
							t.Errorf("offset %d: wrapped record not in scratch", off)
						}
						got = append(got, bytes.Clone(data))
					}})
					if err != nil || n != 1 || len(got) != 1 {
						t.Fatalf("offset %d: consume = %d, %v, %d records", off, n, err, len(got))
					}
					if !bytes.Equal(got[0], want) {
						t.Fatalf("offset %d: got %x, want %x", off, got[0], want)
					}
					if s.tail() != s.head {
						t.Fatalf("offset %d: tail %d, head %d", off, s.tail(), s.head)
					}
					if off+rec > size {
						wrapped++
					}
				}
				if rec > 8 && wrapped == 0 {
					t.Fatalf("no offset made the record wrap")
				}
			})
		}
	}
}

// TestPerfRingStream pushes records of varying sizes through a small ring
// over many laps, so records wrap at many offsets inside batches.
func TestPerfRingStream(t *testing.T) {
	s := newSimPerf(t, 256, 0)
	next, seq := 0, 0
	for round := 0; round < 500; round++ {
		for k := 0; k < round%5+1; k++ {
			p := payloadOf(seq, (seq*13)%90)
			if uint64(sampleRecordSize(len(p))) > s.free() {
				break
			}
			s.sample(p)
			seq++
		}
		s.publish()
		_, err := s.consume(Handler{Sample: func(_ int, data []byte) {
			if want := payloadOf(next, (next*13)%90); !bytes.Equal(data, want) {
				t.Fatalf("record %d: got %x, want %x", next, data, want)
			}
			next++
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if next != seq || s.lost != 0 {
		t.Fatalf("delivered %d of %d (lost %d)", next, seq, s.lost)
	}
}

func TestPerfRingTailStoredOncePerBatch(t *testing.T) {
	s := newSimPerf(t, 1024, 8)
	for i := 0; i < 10; i++ {
		s.sample(payloadOf(i, 24))
	}
	s.publish()
	start := s.tail()
	calls := 0
	n, err := s.consume(Handler{Sample: func(int, []byte) {
		calls++
		if s.tail() != start {
			t.Fatalf("tail moved to %d during the batch (record %d)", s.tail(), calls)
		}
	}})
	if err != nil || n != 10 || calls != 10 {
		t.Fatalf("consume = %d, %v after %d calls", n, err, calls)
	}
	if s.tail() != s.head {
		t.Fatalf("tail %d after the batch, want head %d", s.tail(), s.head)
	}
	// Nothing published: nothing delivered, nothing stored.
	if n, err := s.consume(Handler{Sample: func(int, []byte) { t.Fatal("unexpected record") }}); n != 0 || err != nil {
		t.Fatalf("empty consume = %d, %v", n, err)
	}
}

func TestPerfRingOnlyPublishedRecords(t *testing.T) {
	s := newSimPerf(t, 1024, 0)
	s.sample(payloadOf(1, 8))
	s.publish()
	s.sample(payloadOf(2, 8)) // written, not yet published
	var seen []uint32
	h := Handler{Sample: func(_ int, d []byte) { seen = append(seen, binary.LittleEndian.Uint32(d)) }}
	if n, err := s.consume(h); n != 1 || err != nil {
		t.Fatalf("consume = %d, %v", n, err)
	}
	s.publish()
	if n, err := s.consume(h); n != 1 || err != nil {
		t.Fatalf("consume = %d, %v", n, err)
	}
	if fmt.Sprint(seen) != "[1 2]" {
		t.Fatalf("records %v", seen)
	}
}

func TestPerfRingLost(t *testing.T) {
	s := newSimPerf(t, 256, 0)
	emitted, accepted := 0, 0
	for i := 0; i < 50; i++ {
		emitted++
		if s.sample(payloadOf(i, 20)) {
			accepted++
		}
	}
	s.publish()
	if s.lost == 0 {
		t.Fatal("ring never filled")
	}
	var delivered, lost uint64
	h := Handler{
		Sample: func(int, []byte) { delivered++ },
		Lost:   func(cpu int, n uint64) { lost += n },
	}
	if _, err := s.consume(h); err != nil {
		t.Fatal(err)
	}
	// The kernel reports the loss with its next successful write.
	emitted++
	if !s.sample(payloadOf(99, 20)) {
		t.Fatal("no room after draining")
	}
	s.publish()
	if _, err := s.consume(h); err != nil {
		t.Fatal(err)
	}
	if lost == 0 || delivered+lost != uint64(emitted) {
		t.Fatalf("delivered %d + lost %d != emitted %d", delivered, lost, emitted)
	}
	if st := s.c.lost.Load(); st != lost {
		t.Fatalf("Stats lost %d, handler saw %d", st, lost)
	}
}

func TestPerfRingSkipsUnknownTypes(t *testing.T) {
	s := newSimPerf(t, 512, 0)
	s.sample(payloadOf(0, 10))
	s.rawRecord(3, 32, []byte("comm"))  // PERF_RECORD_COMM
	s.rawRecord(17, 8, nil)             // header only
	s.rawRecord(0xbeef, 120, []byte{1}) // a type from the future
	s.sample(payloadOf(1, 10))
	s.publish()
	var seqs []uint32
	n, err := s.consume(Handler{Sample: func(_ int, d []byte) { seqs = append(seqs, binary.LittleEndian.Uint32(d)) }})
	if err != nil || n != 2 || fmt.Sprint(seqs) != "[0 1]" {
		t.Fatalf("consume = %d, %v, records %v", n, err, seqs)
	}
	if got := s.c.skipped.Load(); got != 3 {
		t.Fatalf("skipped %d, want 3", got)
	}
}

func TestPerfRingNilHandlers(t *testing.T) {
	s := newSimPerf(t, 256, 0)
	for i := 0; i < 30; i++ {
		s.sample(payloadOf(i, 30))
	}
	s.publish()
	if _, err := s.consume(Handler{}); err != nil {
		t.Fatal(err)
	}
	s.sample(payloadOf(0, 30)) // carries the lost record
	s.publish()
	if _, err := s.consume(Handler{}); err != nil {
		t.Fatal(err)
	}
	if s.tail() != s.head || s.c.lost.Load() == 0 || s.c.samples.Load() == 0 {
		t.Fatalf("tail %d head %d, counters %+v", s.tail(), s.head, &s.c)
	}
}

func TestPerfRingCorrupt(t *testing.T) {
	type corruption struct {
		name  string
		write func(s *simPerf)
	}
	cases := []corruption{
		{"size zero", func(s *simPerf) { s.rawRecord(perfRecordSample, 8, nil); s.patchSize(0) }},
		{"size below header", func(s *simPerf) { s.rawRecord(perfRecordSample, 8, nil); s.patchSize(4) }},
		{"size not multiple of 8", func(s *simPerf) { s.rawRecord(perfRecordSample, 24, nil); s.patchSize(20) }},
		{"size past head", func(s *simPerf) { s.rawRecord(perfRecordSample, 24, nil); s.patchSize(32) }},
		{"size larger than the ring", func(s *simPerf) { s.rawRecord(perfRecordSample, 24, nil); s.patchSize(65528) }},
		{"sample without raw size", func(s *simPerf) { s.rawRecord(perfRecordSample, 8, nil) }},
		{"raw size past record", func(s *simPerf) {
			var b [4]byte
			binary.NativeEndian.PutUint32(b[:], 13)
			s.rawRecord(perfRecordSample, 24, b[:])
		}},
		{"raw size huge", func(s *simPerf) {
			s.rawRecord(perfRecordSample, 24, []byte{0xff, 0xff, 0xff, 0xff})
		}},
		{"lost record too short", func(s *simPerf) { s.rawRecord(perfRecordLost, 16, nil) }},
		{"head not aligned", func(s *simPerf) { s.sample(payloadOf(5, 4)); s.head += 4 }},
		{"head behind tail", func(s *simPerf) { s.head = s.tail() - 8 }},
		{"head a lap ahead", func(s *simPerf) { s.head = s.tail() + s.size + 8 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, start := range []uint64{0, 200, 1 << 40} {
				s := newSimPerf(t, 256, start)
				s.sample(payloadOf(1, 16)) // a good record before the bad one
				s.publish()
				if n, err := s.consume(Handler{}); n != 1 || err != nil {
					t.Fatalf("good record: %d, %v", n, err)
				}
				s.sample(payloadOf(2, 16))
				c.write(s)
				s.publish()
				var got []uint32
				h := Handler{Sample: func(_ int, d []byte) {
					if len(d) >= 4 {
						got = append(got, binary.LittleEndian.Uint32(d))
					}
				}}
				_, err := s.consume(h)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("start %d: err = %v, want ErrCorrupt", start, err)
				}
				if s.tail() != s.publishedHead() {
					t.Fatalf("start %d: not resynchronised: tail %d, head %d", start, s.tail(), s.publishedHead())
				}
				if s.c.resyncs.Load() != 1 {
					t.Fatalf("resyncs = %d", s.c.resyncs.Load())
				}
				if len(got) > 0 && got[0] != 2 {
					t.Fatalf("delivered %v before the corruption", got)
				}
				// The ring works again from the resynchronised position
				// (realigned: the kernel never publishes a misaligned head).
				s.head = (s.tail() + 7) &^ 7
				*u64At(s.meta, perfOffDataTail) = s.head
				got = nil
				s.sample(payloadOf(3, 40))
				s.publish()
				if n, err := s.consume(h); n != 1 || err != nil || fmt.Sprint(got) != "[3]" {
					t.Fatalf("after resync: %d, %v, %v", n, err, got)
				}
			}
		})
	}
}

// patchSize overwrites the size field of the record last written by
// rawRecord, whose size is the distance back from head.
func (s *simPerf) patchSize(size uint16) {
	// Walk records from the published head to find the last one.
	p := s.publishedHead()
	last := p
	for p < s.head {
		last = p
		var hdr [8]byte
		for i := range hdr {
			hdr[i] = s.data[(p+uint64(i))&(s.size-1)]
		}
		p += uint64(binary.NativeEndian.Uint16(hdr[6:]))
	}
	off := (last + 6) & (s.size - 1)
	binary.NativeEndian.PutUint16(s.data[off:], size)
}

func TestPerfRingHandlerPanicConsumesRecord(t *testing.T) {
	s := newSimPerf(t, 256, 0)
	for i := 0; i < 3; i++ {
		s.sample(payloadOf(i, 8))
	}
	s.publish()
	func() {
		defer func() { _ = recover() }()
		s.consume(Handler{Sample: func(_ int, d []byte) {
			if binary.LittleEndian.Uint32(d) == 1 {
				panic("handler")
			}
		}})
	}()
	var got []uint32
	s.consume(Handler{Sample: func(_ int, d []byte) { got = append(got, binary.LittleEndian.Uint32(d)) }})
	if fmt.Sprint(got) != "[2]" {
		t.Fatalf("after a panic in record 1, redelivered %v, want [2]", got)
	}
}

func TestPerfRingConsumeAllocatesNothing(t *testing.T) {
	s := newSimPerf(t, 4096, 4000) // batches wrap the end, exercising scratch
	payload := payloadOf(1, 52)
	total := 0
	h := Handler{Sample: func(_ int, d []byte) { total += len(d) }, Lost: func(int, uint64) {}}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 20; i++ {
			s.sampleNoAlloc(payload)
		}
		s.publish()
		if n, err := s.consume(h); n != 20 || err != nil {
			t.Fatalf("consume = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 20-record Consume", allocs)
	}
	if total == 0 {
		t.Fatal("handler not called")
	}
}

// sampleNoAlloc is sample for the allocation test: it writes the record in
// place instead of building it in a temporary slice.
func (s *simPerf) sampleNoAlloc(payload []byte) {
	size := sampleRecordSize(len(payload))
	var hdr [perfSampleMin]byte
	binary.NativeEndian.PutUint32(hdr[0:], perfRecordSample)
	binary.NativeEndian.PutUint16(hdr[6:], uint16(size))
	binary.NativeEndian.PutUint32(hdr[8:], uint32(len(payload)))
	s.put(hdr[:])
	s.put(payload)
	s.head += uint64(size - perfSampleMin - len(payload))
}

func TestNewPerfRingGeometry(t *testing.T) {
	meta := alignedBytes(simPageSize)
	for _, size := range []int{0, 4, 24, 100, 4095} {
		if _, err := newPerfRing(0, meta, alignedBytes(max(size, 1))[:size]); err == nil {
			t.Errorf("data of %d bytes accepted", size)
		}
	}
	if _, err := newPerfRing(0, meta[:100], alignedBytes(64)); err == nil {
		t.Error("short metadata page accepted")
	}
	if _, err := newPerfRing(0, alignedBytes(simPageSize + 1)[1:], alignedBytes(64)); err == nil {
		t.Error("misaligned metadata page accepted")
	}
	*u64At(meta, perfOffDataSize) = 128
	*u64At(meta, perfOffDataOffset) = simPageSize
	if _, err := newPerfRing(0, meta, alignedBytes(64)); err == nil {
		t.Error("data area disagreeing with data_size accepted")
	}
}
