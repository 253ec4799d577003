package ringbuf

import (
	"encoding/binary"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// timesOf is a handler recording the time and first payload byte of each
// sample it gets.
type timesOf struct {
	times []uint64
	first []byte
}

func (r *timesOf) handler() Handler {
	return Handler{SampleAt: func(_ int, at uint64, d []byte) {
		r.times = append(r.times, at)
		r.first = append(r.first, d[0])
	}}
}

// forSessions runs fn outside a session and inside one (Begin before, End
// after), where ConsumeUntil uses the session's positions.
func forSessions(t *testing.T, fn func(t *testing.T, session bool)) {
	for _, session := range []bool{false, true} {
		t.Run(map[bool]string{false: "claimed", true: "session"}[session], func(t *testing.T) {
			fn(t, session)
		})
	}
}

// A run delivers the samples up to the bound, holds the first one past it
// as the ring's head (Peek returns it), starts the next run from that
// head, and stops at an empty ring; the samples are counted.
func TestConsumeUntilBound(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		for i := range 4 {
			require.NoError(t, sim.Sample(0, uint64(10*(i+1)), []byte{byte(i)}, nil))
		}
		if session {
			require.NoError(t, sim.Begin())
		}
		var got timesOf
		var head PerfSample
		n, ok, err := sim.ConsumeUntil(0, 25, got.handler(), &head)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.True(t, ok)
		require.Equal(t, []uint64{10, 20}, got.times)
		require.Equal(t, uint64(30), head.Time)
		require.Equal(t, byte(2), head.Data[0])
		require.Equal(t, 0, head.CPU)

		peeked, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, head, peeked, "the held head is Peek's")

		var again PerfSample
		n, ok, err = sim.ConsumeUntil(0, 29, got.handler(), &again)
		require.NoError(t, err)
		require.Zero(t, n, "the held head is past the bound: nothing goes")
		require.True(t, ok)
		require.Equal(t, head, again)

		n, ok, err = sim.ConsumeUntil(0, 30, got.handler(), nil)
		require.NoError(t, err)
		require.Equal(t, 1, n, "a time equal to the bound goes")
		require.True(t, ok)
		kept := head
		n, ok, err = sim.ConsumeUntil(0, math.MaxUint64, got.handler(), &head)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.False(t, ok, "the ring ran dry")
		require.Equal(t, kept, head, "*head left as it was")
		require.Equal(t, []uint64{10, 20, 30, 40}, got.times)
		require.Equal(t, []byte{0, 1, 2, 3}, got.first)

		n, ok, err = sim.ConsumeUntil(0, math.MaxUint64, got.handler(), nil)
		require.NoError(t, err)
		require.Zero(t, n)
		require.False(t, ok)
		if session {
			require.NoError(t, sim.End())
		}
		require.False(t, sim.Pending(), "the tail is stored")
		require.Equal(t, uint64(4), sim.Stats().Samples)
	})
}

// A held head goes out as it was read when it was held: ConsumeUntil does
// not read it again (here its time word is changed in the ring after the
// hold; the run still goes by the held time).
func TestConsumeUntilHeldNotReread(t *testing.T) {
	sim, err := NewPerfSim(1, 1, true)
	require.NoError(t, err)
	defer sim.Close()
	require.NoError(t, sim.Sample(0, 100, []byte{7}, nil))
	require.NoError(t, sim.Begin())
	_, ok, err := sim.Peek(0, nil)
	require.NoError(t, err)
	require.True(t, ok)
	ring := sim.rings[0]
	binary.NativeEndian.PutUint64(ring.data[ring.peekTail&ring.mask+perfHeaderSize:], 5)
	var got timesOf
	n, ok, err := sim.ConsumeUntil(0, 50, got.handler(), nil)
	require.NoError(t, err)
	require.Zero(t, n)
	require.True(t, ok)
	n, _, err = sim.ConsumeUntil(0, 100, got.handler(), nil)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []uint64{100}, got.times)
	require.NoError(t, sim.End())
}

// Runs over a one-page ring that wraps many times: every record comes
// whole and in order (a record across the ring's end is reassembled),
// whatever the bound, also for the head held across the wrap.
func TestConsumeUntilWrap(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		payload := make([]byte, 100)
		sent, got := 0, 0
		h := Handler{SampleAt: func(_ int, at uint64, d []byte) {
			require.Equal(t, uint64(got), at)
			require.Equal(t, byte(got), d[0])
			require.Equal(t, byte(got), d[99])
			got++
		}}
		for round := range 40 {
			for {
				for i := range payload {
					payload[i] = byte(sent)
				}
				if err := sim.Sample(0, uint64(sent), payload[:3], payload[3:]); err != nil {
					require.ErrorIs(t, err, unix.EAGAIN)
					break
				}
				sent++
			}
			if session {
				require.NoError(t, sim.Begin())
			}
			// Bounds that stop runs in the middle of the ring, at a varying
			// place each round.
			for bound := uint64(got + round%7); ; bound += 5 {
				var head PerfSample
				_, ok, err := sim.ConsumeUntil(0, bound, h, &head)
				require.NoError(t, err)
				if !ok {
					break
				}
				require.Equal(t, bound+1, head.Time)
				require.Equal(t, byte(head.Time), head.Data[99])
			}
			if session {
				require.NoError(t, sim.End())
			}
			require.Equal(t, sent, got)
		}
		require.Greater(t, sent, 40*4096/128)
		require.Equal(t, uint64(sent), sim.Stats().Samples)
	})
}

// Lost records inside a run reach Lost and the stats, and the run goes on
// past them; records of unknown types are skipped.
func TestConsumeUntilLost(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(2, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		require.NoError(t, sim.Sample(1, 1, []byte{1}, nil))
		require.NoError(t, sim.Lost(1, 3))
		require.NoError(t, sim.Sample(1, 2, []byte{2}, nil))
		require.NoError(t, sim.Lost(1, 2))
		require.NoError(t, sim.Sample(1, 9, []byte{3}, nil))
		if session {
			require.NoError(t, sim.Begin())
		}
		var got timesOf
		lost := uint64(0)
		h := got.handler()
		h.Lost = func(cpu int, n uint64) {
			require.Equal(t, 1, cpu)
			lost += n
		}
		var head PerfSample
		n, ok, err := sim.ConsumeUntil(1, 5, h, &head)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.True(t, ok)
		require.Equal(t, uint64(9), head.Time)
		require.Equal(t, 1, head.CPU)
		require.Equal(t, []uint64{1, 2}, got.times)
		require.Equal(t, uint64(5), lost)
		require.Equal(t, uint64(5), sim.Stats().Lost)
		if session {
			require.NoError(t, sim.End())
		}
	})
}

// A corrupt header inside a run: the samples before it are delivered, the
// ring is resynchronised (what it held dropped), the error wraps
// ErrCorrupt and names the CPU, and the ring is usable again.
func TestConsumeUntilCorrupt(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		require.NoError(t, sim.Sample(0, 10, []byte{1}, nil))
		require.NoError(t, sim.Sample(0, 20, []byte{2}, nil))
		require.NoError(t, sim.Corrupt(0))
		require.NoError(t, sim.Sample(0, 30, []byte{3}, nil))
		if session {
			require.NoError(t, sim.Begin())
		}
		var got timesOf
		n, ok, err := sim.ConsumeUntil(0, math.MaxUint64, got.handler(), nil)
		require.ErrorIs(t, err, ErrCorrupt)
		require.ErrorContains(t, err, "CPU 0")
		require.Equal(t, 2, n)
		require.False(t, ok)
		require.Equal(t, []uint64{10, 20}, got.times)
		if session {
			require.NoError(t, sim.End())
		}
		require.False(t, sim.Pending())
		require.Equal(t, uint64(1), sim.Stats().Resyncs)

		require.NoError(t, sim.Sample(0, 40, []byte{4}, nil))
		n, _, err = sim.ConsumeUntil(0, math.MaxUint64, got.handler(), nil)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, []uint64{10, 20, 40}, got.times)
	})
}

// A handler that panics mid-run: the panic reaches the caller, the sample
// it was given counts as consumed (and in Stats), and the samples after it
// come with the next run, also when the panic hit the held head.
func TestConsumeUntilPanic(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		for i := range 6 {
			require.NoError(t, sim.Sample(0, uint64(i), []byte{byte(i)}, nil))
		}
		if session {
			require.NoError(t, sim.Begin())
		}
		var got []byte
		h := Handler{Sample: func(_ int, d []byte) {
			got = append(got, d[0])
			if d[0] == 2 || d[0] == 4 {
				panic("handler")
			}
		}}
		run := func(until uint64) (n int, ok bool, err error) {
			defer func() {
				if v := recover(); v != nil {
					require.Equal(t, "handler", v)
					n = -1
				}
			}()
			n, ok, err = sim.ConsumeUntil(0, until, h, nil)
			return n, ok, err
		}
		n, _, _ := run(math.MaxUint64)
		require.Equal(t, -1, n, "the panic reached the caller")
		require.Equal(t, []byte{0, 1, 2}, got)
		if !session {
			require.Equal(t, uint64(3), sim.Stats().Samples, "the panicking sample counts")
		}
		// Hold 4, then panic on it as the run's first (held) record.
		n, ok, err := run(3)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.True(t, ok)
		n, _, _ = run(math.MaxUint64)
		require.Equal(t, -1, n)
		n, ok, err = run(math.MaxUint64)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.False(t, ok)
		require.Equal(t, []byte{0, 1, 2, 3, 4, 5}, got)
		if session {
			require.NoError(t, sim.End())
		}
		require.Equal(t, uint64(6), sim.Stats().Samples)
		require.False(t, sim.Pending())
	})
}

// Bad calls: a ring out of range wraps EINVAL, a run inside a Consume (from
// its handler) EBUSY, a closed sim os.ErrClosed; a handler may close the
// sim mid-run, which ends the run.
func TestConsumeUntilErrors(t *testing.T) {
	sim, err := NewPerfSim(1, 1, true)
	require.NoError(t, err)
	_, _, err = sim.ConsumeUntil(1, 0, Handler{}, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	_, _, err = sim.ConsumeUntil(-1, 0, Handler{}, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	require.NoError(t, sim.Begin())
	_, _, err = sim.ConsumeUntil(1, 0, Handler{}, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	require.NoError(t, sim.End())

	for i := range 3 {
		require.NoError(t, sim.Sample(0, uint64(i), nil, nil))
	}
	var inner error
	_, err = sim.Consume(Handler{Sample: func(int, []byte) {
		_, _, inner = sim.ConsumeUntil(0, math.MaxUint64, Handler{}, nil)
	}})
	require.NoError(t, err)
	require.ErrorIs(t, inner, unix.EBUSY)

	for i := range 3 {
		require.NoError(t, sim.Sample(0, uint64(i), nil, nil))
	}
	calls := 0
	n, ok, err := sim.ConsumeUntil(0, math.MaxUint64, Handler{Sample: func(int, []byte) {
		calls++
		require.NoError(t, sim.Close())
	}}, nil)
	require.ErrorIs(t, err, os.ErrClosed)
	require.Equal(t, 1, n)
	require.Equal(t, 1, calls, "closed by the handler: the run ends")
	require.False(t, ok)
	_, _, err = sim.ConsumeUntil(0, 0, Handler{}, nil)
	require.ErrorIs(t, err, os.ErrClosed)
}

// Without timestamps every sample's time is 0: any bound delivers the
// whole ring.
func TestConsumeUntilUntimed(t *testing.T) {
	sim, err := NewPerfSim(1, 1, false)
	require.NoError(t, err)
	defer sim.Close()
	for i := range 3 {
		require.NoError(t, sim.Sample(0, 99, []byte{byte(i)}, nil))
	}
	var got timesOf
	n, ok, err := sim.ConsumeUntil(0, 0, got.handler(), nil)
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.False(t, ok)
	require.Equal(t, []uint64{0, 0, 0}, got.times)
}

// Runs allocate nothing per record, inside a session and outside one,
// including runs that wrap the ring and stop at a bound.
func TestConsumeUntilAllocatesNothing(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		total := 0
		h := Handler{SampleAt: func(_ int, _ uint64, d []byte) { total += len(d) }, Lost: func(int, uint64) {}}
		payload := make([]byte, 60)
		at := uint64(0)
		allocs := testing.AllocsPerRun(200, func() {
			for range 20 {
				at++
				if err := sim.Sample(0, at, payload, nil); err != nil {
					t.Fatal(err)
				}
			}
			if session {
				if err := sim.Begin(); err != nil {
					t.Fatal(err)
				}
			}
			n, ok, err := sim.ConsumeUntil(0, at-10, h, nil)
			if n != 10 || !ok || err != nil {
				t.Fatalf("first run: %d %v %v", n, ok, err)
			}
			n, ok, err = sim.ConsumeUntil(0, at, h, nil)
			if n != 10 || ok || err != nil {
				t.Fatalf("second run: %d %v %v", n, ok, err)
			}
			if session {
				if err := sim.End(); err != nil {
					t.Fatal(err)
				}
			}
		})
		require.Zero(t, allocs)
		require.NotZero(t, total)
	})
}

// ConsumeUntil on the kernel's rings: a run stops at the bound with the
// next record held (Peek returns it), and the next run delivers the rest.
func TestConsumeUntilKernel(t *testing.T) {
	r, p, cpu := timedReader(t)
	buf := make([]byte, 16)
	for i := range 4 {
		require.NoError(t, p.Emit(record(buf, cpu, i)))
	}
	require.NoError(t, r.Begin())
	second, ok, err := r.Peek(0, nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint32(0), getU32(second.Data[4:]))
	var seqs []uint32
	h := Handler{SampleAt: func(c int, _ uint64, d []byte) {
		require.Equal(t, cpu, c)
		seqs = append(seqs, getU32(d[4:]))
	}}
	// Up to the first record's time: the first goes, the second is held
	// (the kernel's clock has moved on between two writes).
	var head PerfSample
	n, ok, err := r.ConsumeUntil(0, second.Time, h, &head)
	require.NoError(t, err)
	require.True(t, ok)
	require.GreaterOrEqual(t, n, 1)
	require.Greater(t, head.Time, second.Time)
	peeked, _, _ := r.Peek(0, nil)
	require.Equal(t, head, peeked)
	n2, ok, err := r.ConsumeUntil(0, math.MaxUint64, h, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, 4, n+n2)
	require.Equal(t, []uint32{0, 1, 2, 3}, seqs)
	require.NoError(t, r.End())
	require.False(t, r.Pending())
	require.Equal(t, uint64(4), r.Stats().Samples)
	_, _, err = r.ConsumeUntil(1, 0, h, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	require.NoError(t, r.Close())
	_, _, err = r.ConsumeUntil(0, 0, h, nil)
	require.ErrorIs(t, err, os.ErrClosed)
}
