package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func TestBPFRingWrapAtEveryOffsetWithoutCopy(t *testing.T) {
	for _, size := range []int{64, 256, 4096} {
		for _, n := range []int{0, 1, 7, 8, 13, 48, 56, 200, 4000} {
			_, total := ringRecordSize(uint32(n))
			if total > uint64(size) {
				continue
			}
			t.Run(fmt.Sprintf("ring%d/payload%d", size, n), func(t *testing.T) {
				want := payloadOf(n, n)
				for off := 0; off < size; off += 8 {
					s := newSimRing(t, size, uint64(5*size+off))
					if !s.output(want) {
						t.Fatalf("offset %d: no room", off)
					}
					var got []byte
					calls := 0
					k, err := s.consume(func(d []byte) {
						calls++
						// Always in place: the mirror makes wrapped records contiguous.
						if !within(d, s.data) {
							t.Errorf("offset %d: record not in the ring", off)
						}
						got = bytes.Clone(d)
					})
					if err != nil || k != 1 || calls != 1 || !bytes.Equal(got, want) {
						t.Fatalf("offset %d: consume = %d, %v; got %x want %x", off, k, err, got, want)
					}
					if s.consPos() != s.pos {
						t.Fatalf("offset %d: consumer %d, producer %d", off, s.consPos(), s.pos)
					}
				}
			})
		}
	}
}

func TestBPFRingStream(t *testing.T) {
	s := newSimRing(t, 512, 0)
	next, seq := 0, 0
	for round := 0; round < 500; round++ {
		for k := 0; k < round%7+1; k++ {
			if !s.output(payloadOf(seq, (seq*11)%120)) {
				break
			}
			seq++
		}
		if _, err := s.consume(func(d []byte) {
			if want := payloadOf(next, (next*11)%120); !bytes.Equal(d, want) {
				t.Fatalf("record %d: got %x, want %x", next, d, want)
			}
			next++
		}); err != nil {
			t.Fatal(err)
		}
	}
	if next != seq {
		t.Fatalf("delivered %d of %d", next, seq)
	}
}

func TestBPFRingBusyStopsDrain(t *testing.T) {
	s := newSimRing(t, 1024, 0)
	s.output(payloadOf(0, 10))
	busy, _ := s.reserve(20) // reserved, not committed
	s.fill(busy, payloadOf(1, 20))
	s.output(payloadOf(2, 30))

	var seqs []uint32
	fn := func(d []byte) { seqs = append(seqs, binary.LittleEndian.Uint32(d)) }
	if n, err := s.consume(fn); n != 1 || err != nil || fmt.Sprint(seqs) != "[0]" {
		t.Fatalf("consume = %d, %v, %v", n, err, seqs)
	}
	if s.consPos() != busy {
		t.Fatalf("consumer at %d, want the busy record at %d", s.consPos(), busy)
	}
	if n, err := s.consume(fn); n != 0 || err != nil {
		t.Fatalf("consume while busy = %d, %v", n, err)
	}
	s.commit(busy, 20, false)
	if n, err := s.consume(fn); n != 2 || err != nil || fmt.Sprint(seqs) != "[0 1 2]" {
		t.Fatalf("consume after commit = %d, %v, %v", n, err, seqs)
	}
	if s.consPos() != s.pos {
		t.Fatalf("consumer %d, producer %d", s.consPos(), s.pos)
	}
}

func TestBPFRingDiscardSkippedAndAcknowledged(t *testing.T) {
	s := newSimRing(t, 256, 0)
	s.output(payloadOf(0, 10))
	p, _ := s.reserve(40)
	s.fill(p, payloadOf(1, 40))
	s.commit(p, 40, true)
	s.output(payloadOf(2, 10))
	p, _ = s.reserve(16) // a discarded record as the last one
	s.commit(p, 16, true)

	var seqs []uint32
	n, err := s.consume(func(d []byte) { seqs = append(seqs, binary.LittleEndian.Uint32(d)) })
	if n != 2 || err != nil || fmt.Sprint(seqs) != "[0 2]" {
		t.Fatalf("consume = %d, %v, %v", n, err, seqs)
	}
	if s.consPos() != s.pos {
		t.Fatalf("discarded records not acknowledged: consumer %d, producer %d", s.consPos(), s.pos)
	}
	if s.c.discarded.Load() != 2 || s.c.records.Load() != 2 {
		t.Fatalf("counters: %d records, %d discarded", s.c.records.Load(), s.c.discarded.Load())
	}
}

func TestBPFRingConsumerStoredOncePerBatch(t *testing.T) {
	s := newSimRing(t, 1024, 16)
	for i := 0; i < 10; i++ {
		s.output(payloadOf(i, 17))
	}
	start := s.consPos()
	calls := 0
	n, err := s.consume(func([]byte) {
		calls++
		if s.consPos() != start {
			t.Fatalf("consumer_pos moved during the batch (record %d)", calls)
		}
	})
	if n != 10 || err != nil || s.consPos() != s.pos {
		t.Fatalf("consume = %d, %v; consumer %d, producer %d", n, err, s.consPos(), s.pos)
	}
}

func TestBPFRingAvailableExact(t *testing.T) {
	s := newSimRing(t, 256, 0)
	want := uint64(0)
	for _, n := range []int{0, 1, 8, 9, 30} {
		s.output(payloadOf(n, n))
		_, total := ringRecordSize(uint32(n))
		want += total
		if got := s.ring.available(); got != want {
			t.Fatalf("after a %d-byte record: available %d, want %d", n, got, want)
		}
	}
	s.consume(func([]byte) {})
	if got := s.ring.available(); got != 0 {
		t.Fatalf("available %d after draining", got)
	}
	*u64At(s.prod, 0) = s.consPos() - 8
	if got := s.ring.available(); got != 0 {
		t.Fatalf("available %d with the producer behind", got)
	}
}

func TestBPFRingCorrupt(t *testing.T) {
	cases := []struct {
		name  string
		write func(s *simRing)
	}{
		{"length past producer", func(s *simRing) {
			p, _ := s.reserve(16)
			s.commit(p, 64, false)
		}},
		{"length larger than the ring", func(s *simRing) {
			p, _ := s.reserve(16)
			s.commit(p, 1<<29, false)
		}},
		{"discarded length past producer", func(s *simRing) {
			p, _ := s.reserve(16)
			s.commit(p, 200, true)
		}},
		{"producer a lap ahead", func(s *simRing) {
			s.pos += s.size + 8
			*u64At(s.prod, 0) = s.pos
		}},
		{"producer behind consumer", func(s *simRing) {
			s.pos = s.consPos() - 8
			*u64At(s.prod, 0) = s.pos
		}},
		{"producer misaligned", func(s *simRing) {
			s.output(payloadOf(2, 8))
			s.pos += 4
			*u64At(s.prod, 0) = s.pos
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, start := range []uint64{0, 96, 1 << 40} {
				s := newSimRing(t, 256, start)
				s.output(payloadOf(1, 8))
				c.write(s)
				var got []uint32
				fn := func(d []byte) { got = append(got, binary.LittleEndian.Uint32(d)) }
				_, err := s.consume(fn)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("start %d: err = %v, want ErrCorrupt", start, err)
				}
				if s.consPos() != s.pos {
					t.Fatalf("start %d: not resynchronised: consumer %d, producer %d", start, s.consPos(), s.pos)
				}
				if s.c.resyncs.Load() != 1 {
					t.Fatalf("resyncs = %d", s.c.resyncs.Load())
				}
				if len(got) > 0 && got[0] != 1 {
					t.Fatalf("delivered %v", got)
				}
				// Realign the producer (a misaligned one stays corrupt) and
				// check the ring works again.
				s.pos = (s.pos + 7) &^ 7
				*u64At(s.cons, 0) = s.pos
				*u64At(s.prod, 0) = s.pos
				got = nil
				s.output(payloadOf(3, 40))
				if n, err := s.consume(fn); n != 1 || err != nil || fmt.Sprint(got) != "[3]" {
					t.Fatalf("after resync: %d, %v, %v", n, err, got)
				}
			}
		})
	}
}

func TestBPFRingConsumeAllocatesNothing(t *testing.T) {
	s := newSimRing(t, 4096, 4000)
	payload := payloadOf(1, 56)
	total := 0
	fn := func(d []byte) { total += len(d) }
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 20; i++ {
			s.output(payload)
		}
		if n, err := s.consume(fn); n != 20 || err != nil {
			t.Fatalf("consume = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per 20-record Consume", allocs)
	}
	if total != 100*20*56+20*56 {
		t.Fatalf("handler saw %d bytes", total)
	}
}

func TestNewBPFRingGeometry(t *testing.T) {
	page := alignedBytes(simPageSize)
	for _, size := range []int{0, 4, 24, 100} {
		if _, err := newBPFRing(page, page, alignedBytes(2*size + 1)[:2*size]); err == nil {
			t.Errorf("data of 2x%d bytes accepted", size)
		}
	}
	if _, err := newBPFRing(page, page, alignedBytes(100)); err == nil {
		t.Error("data not twice a power of two accepted")
	}
	if _, err := newBPFRing(alignedBytes(9)[1:], page, alignedBytes(128)); err == nil {
		t.Error("misaligned consumer page accepted")
	}
}
