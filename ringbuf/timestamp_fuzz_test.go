package ringbuf

import (
	"errors"
	"testing"
)

// FuzzPerfRingTimed feeds arbitrary ring contents and positions to a ring
// whose samples carry a time word, read once with Consume, once with Peek
// and Advance, outside a session and inside one (positions read once per
// batch, the tail stored at its end), and once in ConsumeUntil's runs
// (with a bound from the input, each held head then advanced past): none
// may read outside the ring, each must end at the head, and every error
// must wrap ErrCorrupt. PeekRun windows must then deliver from the same
// bytes what Consume did (fuzzPeekRun).
func FuzzPerfRingTimed(f *testing.F) {
	// A timed sample of 4 raw bytes, a lost record, a sample too short for
	// its time word.
	f.Add(uint8(0), uint64(0), uint64(24), []byte{9, 0, 0, 0, 0, 0, 24, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4})
	f.Add(uint8(1), uint64(0), uint64(24), []byte{2, 0, 0, 0, 0, 0, 24, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(2), uint64(8), uint64(24), []byte{0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, shift uint8, tail, head uint64, mem []byte) {
		size := 8 << (shift % 10)
		for _, mode := range []string{"consume", "peek", "session", "until"} {
			s := newSimPerf(t, size, 0)
			s.ring.timed = true
			copy(s.data, mem)
			*u64At(s.meta, perfOffDataTail) = tail
			*u64At(s.meta, perfOffDataHead) = head
			check := func(d []byte) {
				if uint64(len(d)) > s.size || !(within(d, s.data) || within(d, s.ring.scratch)) {
					t.Fatalf("sample of %d bytes outside the ring", len(d))
				}
			}
			var err error
			switch mode {
			case "until":
				h := Handler{SampleAt: func(_ int, _ uint64, d []byte) { check(d) }}
				until := tail ^ head<<3
				s.ring.sync()
				var samples uint64
				for i := 0; ; i++ {
					var ps PerfSample
					var ok bool
					_, ok, err = s.ring.run(until, false, &h, &s.c, &s.g, &samples, &ps)
					if err != nil || !ok {
						break
					}
					check(ps.Data)
					if ps.Time <= until || !s.ring.advanceBatch() {
						t.Fatalf("held a sample at %d, bound %d", ps.Time, until)
					}
					if i > size {
						t.Fatal("more samples than the ring holds")
					}
				}
				s.ring.publish()
			case "peek", "session":
				session := mode == "session"
				if session {
					s.ring.sync()
				}
				for i := 0; ; i++ {
					var ps PerfSample
					var ok bool
					if session {
						ok, err = s.ring.peekBatch(nil, &s.c, &s.g, &ps)
					} else {
						ok, err = s.ring.peek(nil, &s.c, &s.g, &ps)
					}
					if err != nil || !ok {
						break
					}
					check(ps.Data)
					if session && !s.ring.advanceBatch() || !session && !s.ring.advance() {
						t.Fatal("advance after a peek did nothing")
					}
					if i > size {
						t.Fatal("more samples than the ring holds")
					}
				}
				if session {
					s.ring.publish()
				}
			default:
				_, err = s.consume(Handler{SampleAt: func(_ int, _ uint64, d []byte) { check(d) }})
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if s.tail() != head {
				t.Fatalf("%s (err %v): tail %d, head %d", mode, err, s.tail(), head)
			}
		}
		fuzzPeekRun(t, shift, tail, head, mem, true)
	})
}
