package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// The fuzz targets drive the parsers with simulated rings. The *Raw targets
// hand them arbitrary memory and positions: they must return, never panic
// or read out of bounds, and leave the ring consistent. The others run a
// script of producer actions against a model of what must come out, with
// corruption as one of the actions: while the ring is clean every record
// must come out exactly once, in order; once corrupted, only the safety
// properties hold until the ring has been drained or resynchronised.

// script reads operands from the fuzz input; past its end it yields zeros.
type script struct {
	b []byte
	i int
}

func (s *script) more() bool { return s.i < len(s.b) }

func (s *script) byte() byte {
	if s.i >= len(s.b) {
		return 0
	}
	c := s.b[s.i]
	s.i++
	return c
}

func (s *script) u16() uint16 { return uint16(s.byte()) | uint16(s.byte())<<8 }

// ringStart picks a starting position: small, or near the top of the uint64
// range so positions wrap around zero during the run.
func ringStart(sc *script) uint64 {
	start := uint64(sc.u16()) * 8
	if start&0x8 != 0 {
		start -= 1 << 12
	}
	return start
}

type perfExpect struct {
	payload []byte
	lost    uint64 // reported by a PERF_RECORD_LOST just before this record
	end     uint64 // position after the record
}

func FuzzPerfRing(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 10, 0, 20, 1, 2})
	f.Add([]byte{1, 0x10, 0, 0, 200, 0, 200, 0, 200, 1, 2, 0, 5, 1, 2})
	f.Add([]byte{2, 0xff, 0xff, 0, 30, 4, 3, 0, 30, 1, 3, 5, 2, 1, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := &script{b: in}
		size := 64 << (sc.byte() % 7)
		s := newSimPerf(t, size, ringStart(sc))
		var queue []perfExpect
		dirty := false
		seq := 0
		for sc.more() {
			switch sc.byte() % 6 {
			case 0: // a sample, or a lost one when the ring is full
				lost := s.lost
				p := payloadOf(seq, int(sc.byte()))
				seq++
				if s.sample(p) {
					queue = append(queue, perfExpect{payload: p, lost: lost, end: s.head})
				}
			case 1:
				s.publish()
			case 2:
				fuzzPerfConsume(t, s, &queue, &dirty)
			case 3: // corrupt a written, unconsumed byte
				if pending := s.head - s.tail(); pending > 0 && pending <= s.size {
					at := s.tail() + uint64(sc.u16())%pending
					s.data[at&(s.size-1)] ^= sc.byte() | 1
					dirty = true
				}
			case 4: // a record of a type the reader skips
				n := 8 * (1 + int(sc.byte()%16))
				if s.lost == 0 && uint64(n) <= s.free() {
					s.rawRecord(uint32(3+sc.byte()%6), n, nil)
				}
			case 5: // a head from nowhere, possibly behind or a lap ahead
				s.head = s.tail() + 8*uint64(int64(int16(sc.u16())))
				s.publish()
				dirty = true
			}
		}
		s.publish()
		fuzzPerfConsume(t, s, &queue, &dirty)
	})
}

func fuzzPerfConsume(t *testing.T, s *simPerf, queue *[]perfExpect, dirty *bool) {
	head, from := s.publishedHead(), s.tail()
	// published reports whether a record ending at end lies before head,
	// measuring from the tail so positions may wrap around zero.
	published := func(end uint64) bool { return end-from <= head-from }
	var got [][]byte
	var lost uint64
	n, err := s.consume(Handler{
		Sample: func(cpu int, d []byte) {
			if uint64(len(d)) > s.size || !(within(d, s.data) || within(d, s.ring.scratch)) {
				t.Fatalf("sample of %d bytes outside the ring", len(d))
			}
			got = append(got, bytes.Clone(d))
		},
		Lost: func(cpu int, c uint64) { lost += c },
	})
	if n != len(got) {
		t.Fatalf("consume returned %d, delivered %d", n, len(got))
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	if s.tail() != head {
		t.Fatalf("after consume (err %v): tail %d, head %d", err, s.tail(), head)
	}
	if *dirty {
		// Corruption may have hit payload bytes only, or a header; either
		// way nothing but the safety properties above can be checked.
		for len(*queue) > 0 && published((*queue)[0].end) {
			*queue = (*queue)[1:]
		}
		if head == s.head {
			*queue, *dirty = nil, false
		}
		return
	}
	if err != nil {
		t.Fatalf("clean ring: %v", err)
	}
	var wantLost uint64
	i := 0
	for ; i < len(*queue) && published((*queue)[i].end); i++ {
		q := (*queue)[i]
		wantLost += q.lost
		if i >= len(got) || !bytes.Equal(got[i], q.payload) {
			t.Fatalf("record %d: got %d records, want payload %x", i, len(got), q.payload)
		}
	}
	if i != len(got) || lost != wantLost {
		t.Fatalf("delivered %d records and %d lost, want %d and %d", len(got), lost, i, wantLost)
	}
	*queue = (*queue)[i:]
}

func FuzzPerfRingRaw(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint64(16), []byte{9, 0, 0, 0, 0, 0, 16, 0, 4, 0, 0, 0, 1, 2, 3, 4})
	f.Add(uint8(1), uint64(120), uint64(136), []byte{2, 0, 0, 0, 0, 0, 24, 0})
	f.Add(uint8(2), uint64(8), uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, shift uint8, tail, head uint64, mem []byte) {
		size := 8 << (shift % 10)
		s := newSimPerf(t, size, 0)
		copy(s.data, mem)
		*u64At(s.meta, perfOffDataTail) = tail
		*u64At(s.meta, perfOffDataHead) = head
		for round := 0; round < 2; round++ {
			_, err := s.consume(Handler{
				Sample: func(_ int, d []byte) {
					if uint64(len(d)) > s.size || !(within(d, s.data) || within(d, s.ring.scratch)) {
						t.Fatalf("sample of %d bytes outside the ring", len(d))
					}
				},
			})
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if s.tail() != head {
				t.Fatalf("round %d (err %v): tail %d, head %d", round, err, s.tail(), head)
			}
			if round == 1 && err != nil {
				t.Fatalf("consume after resync: %v", err)
			}
		}
		fuzzPeekRun(t, shift, tail, head, mem, false)
	})
}

type ringExpect struct {
	pos     uint64
	n       int
	payload []byte
	state   int // 0 busy, 1 committed, 2 discarded
}

func FuzzRingBuf(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 10, 0, 20, 4})
	f.Add([]byte{1, 0x10, 0, 1, 30, 0, 10, 4, 2, 0, 4, 3, 1, 4})
	f.Add([]byte{2, 0xff, 0xff, 1, 40, 1, 40, 3, 0, 2, 1, 4, 5, 9, 9, 4})
	f.Fuzz(func(t *testing.T, in []byte) {
		sc := &script{b: in}
		size := 64 << (sc.byte() % 7)
		s := newSimRing(t, size, ringStart(sc))
		var queue []ringExpect
		dirty := false
		seq := 0
		for sc.more() {
			switch sc.byte() % 7 {
			case 0: // bpf_ringbuf_output
				p := payloadOf(seq, int(sc.byte()))
				seq++
				if pos, ok := s.reserve(len(p)); ok {
					s.fill(pos, p)
					s.commit(pos, len(p), false)
					queue = append(queue, ringExpect{pos: pos, n: len(p), payload: p, state: 1})
				}
			case 1: // bpf_ringbuf_reserve, left busy
				p := payloadOf(seq, int(sc.byte()))
				seq++
				if pos, ok := s.reserve(len(p)); ok {
					s.fill(pos, p)
					queue = append(queue, ringExpect{pos: pos, n: len(p), payload: p})
				}
			case 2, 3: // submit or discard the k-th busy record
				k := int(sc.byte())
				for i := range queue {
					if queue[i].state != 0 {
						continue
					}
					if k--; k < 0 {
						discard := sc.byte()%2 == 1
						s.commit(queue[i].pos, queue[i].n, discard)
						queue[i].state = 1
						if discard {
							queue[i].state = 2
						}
						break
					}
				}
			case 4:
				fuzzRingConsume(t, s, &queue, &dirty)
			case 5: // corrupt a reserved, unconsumed byte
				if pending := s.pos - s.consPos(); pending > 0 && pending <= s.size {
					at := s.consPos() + uint64(sc.u16())%pending
					s.setByte(at, s.data[at&(s.size-1)]^(sc.byte()|1))
					dirty = true
				}
			case 6: // a producer position from nowhere
				s.pos = s.consPos() + 8*uint64(int64(int16(sc.u16())))
				*u64At(s.prod, 0) = s.pos
				dirty = true
			}
		}
		for i := range queue {
			if queue[i].state == 0 {
				s.commit(queue[i].pos, queue[i].n, false)
				queue[i].state = 1
			}
		}
		fuzzRingConsume(t, s, &queue, &dirty)
	})
}

func fuzzRingConsume(t *testing.T, s *simRing, queue *[]ringExpect, dirty *bool) {
	prod := atomic64(s.prod)
	var got [][]byte
	n, err := s.consume(func(d []byte) {
		if uint64(len(d)) > s.size || !within(d, s.data) {
			t.Fatalf("record of %d bytes outside the ring", len(d))
		}
		got = append(got, bytes.Clone(d))
	})
	if n != len(got) {
		t.Fatalf("consume returned %d, delivered %d", n, len(got))
	}
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	if err != nil && s.consPos() != prod {
		t.Fatalf("after %v: consumer %d, producer %d", err, s.consPos(), prod)
	}
	if *dirty {
		// Forget records the consumer has moved past (consumed or dropped);
		// the ring is clean again once nothing unconsumed predates the
		// corruption.
		for len(*queue) > 0 && (*queue)[0].pos-s.consPos() > s.size {
			*queue = (*queue)[1:]
		}
		if s.consPos() == s.pos {
			*queue, *dirty = nil, false
		}
		return
	}
	if err != nil {
		t.Fatalf("clean ring: %v", err)
	}
	i, k := 0, 0
	for ; i < len(*queue); i++ {
		q := (*queue)[i]
		if q.state == 0 {
			break
		}
		if q.state == 1 {
			if k >= len(got) || !bytes.Equal(got[k], q.payload) {
				t.Fatalf("record %d: got %d records, want payload %x", k, len(got), q.payload)
			}
			k++
		}
	}
	if k != len(got) {
		t.Fatalf("delivered %d records, want %d", len(got), k)
	}
	*queue = (*queue)[i:]
	want := s.pos
	if len(*queue) > 0 {
		want = (*queue)[0].pos
	}
	if s.consPos() != want {
		t.Fatalf("consumer at %d, want %d", s.consPos(), want)
	}
}

func atomic64(page []byte) uint64 { return loadAcquire(u64At(page, 0)) }

func FuzzRingBufRaw(f *testing.F) {
	f.Add(uint8(0), uint64(0), uint64(16), []byte{8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(1), uint64(120), uint64(144), []byte{0xff, 0xff, 0xff, 0x7f})
	f.Add(uint8(2), uint64(8), uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, shift uint8, cons, prod uint64, mem []byte) {
		size := 8 << (shift % 10)
		s := newSimRing(t, size, 0)
		for i := 0; i < size && i < len(mem); i++ {
			s.setByte(uint64(i), mem[i])
		}
		*u64At(s.cons, 0) = cons
		*u64At(s.prod, 0) = prod
		for round := 0; round < 3; round++ {
			before := s.consPos()
			_, err := s.consume(func(d []byte) {
				if uint64(len(d)) > s.size || !within(d, s.data) {
					t.Fatalf("record of %d bytes outside the ring", len(d))
				}
			})
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if err != nil && s.consPos() != prod {
				t.Fatalf("after %v: consumer %d, producer %d", err, s.consPos(), prod)
			}
			// Without an error the consumer only moves forward, never past
			// the producer.
			if err == nil && s.consPos()-before > prod-before {
				t.Fatalf("consumer moved from %d to %d past producer %d", before, s.consPos(), prod)
			}
			if avail := s.ring.available(); avail > s.size {
				t.Fatalf("available %d in a %d-byte ring", avail, s.size)
			}
		}
	})
}

func FuzzDispatch(f *testing.F) {
	f.Add(uint8(3), []byte{1, 0, 0, 0, 'x'})
	f.Add(uint8(0), []byte{0, 0})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, handlers uint8, rec []byte) {
		d := NewDispatcher()
		var gotCat, calls = -1, 0
		for i := 0; i < int(handlers%8); i++ {
			d.Register(func(cpu int, payload []byte) {
				gotCat, calls = i, calls+1
				if len(payload) != len(rec)-4 {
					t.Fatalf("payload of %d bytes from a %d-byte record", len(payload), len(rec))
				}
			})
		}
		err := d.Dispatch(1, rec)
		switch {
		case len(rec) < 4:
			if !errors.Is(err, ErrShortRecord) || calls != 0 {
				t.Fatalf("short record: %v, %d calls", err, calls)
			}
		case int(binary.LittleEndian.Uint32(rec)) >= int(handlers%8):
			if !errors.Is(err, ErrUnknownCategory) || calls != 0 {
				t.Fatalf("unknown category: %v, %d calls", err, calls)
			}
		default:
			if err != nil || calls != 1 || gotCat != int(binary.LittleEndian.Uint32(rec)) {
				t.Fatalf("category %d: %v, %d calls to %d", binary.LittleEndian.Uint32(rec), err, calls, gotCat)
			}
		}
		st := d.Stats()
		if st.Dispatched+st.Short+st.Unknown != 1 {
			t.Fatalf("stats %+v after one record", st)
		}
	})
}
