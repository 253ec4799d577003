package ringbuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// runSize is the payload length of sample k of runSim: each a different
// length, so a shifted window shows in the lengths as well as the bytes.
func runSize(k int) int { return 8 + k }

// runSim returns a timed sim of cpus one-page rings, closed with the test,
// holding n samples on ring 0: sample k at time 10(k+1), carrying
// payloadOf(k, runSize(k)).
func runSim(t *testing.T, cpus, n int) *PerfSim {
	t.Helper()
	sim, err := NewPerfSim(cpus, 1, true)
	require.NoError(t, err)
	t.Cleanup(func() { sim.Close() })
	for k := range n {
		require.NoError(t, sim.Sample(0, uint64(10*(k+1)), payloadOf(k, runSize(k)), nil))
	}
	return sim
}

// requireRunSample checks that s is sample k of runSim on cpu, with the
// raw length the kernel's padding gives it.
func requireRunSample(t *testing.T, s PerfSample, cpu, k int) {
	t.Helper()
	n := runSize(k)
	require.Equal(t, cpu, s.CPU, "sample %d", k)
	require.Equal(t, uint64(10*(k+1)), s.Time, "sample %d", k)
	require.Len(t, s.Data, (n+4+7)&^7-4, "sample %d", k)
	require.Equal(t, payloadOf(k, n), s.Data[:n], "sample %d", k)
}

func beginIf(t *testing.T, sim *PerfSim, session bool) {
	t.Helper()
	if session {
		require.NoError(t, sim.Begin())
	}
}

func endIf(t *testing.T, sim *PerfSim, session bool) {
	t.Helper()
	if session {
		require.NoError(t, sim.End())
	}
}

// drainRuns consumes what is left on ring i in windows of w samples,
// advancing past each whole window, and returns the samples' times.
func drainRuns(t *testing.T, sim *PerfSim, i, w int) []uint64 {
	t.Helper()
	dst := make([]PerfSample, w)
	var times []uint64
	for range 1000 {
		n, err := sim.PeekRun(i, nil, dst)
		require.NoError(t, err)
		if n == 0 {
			return times
		}
		for _, s := range dst[:n] {
			times = append(times, s.Time)
		}
		adv, err := sim.AdvanceRun(i, n)
		require.NoError(t, err)
		require.True(t, adv)
	}
	t.Fatal("the ring never ran dry")
	return nil
}

// runTimes returns the times of runSim's samples from..to-1.
func runTimes(from, to int) []uint64 {
	var times []uint64
	for k := from; k < to; k++ {
		times = append(times, uint64(10*(k+1)))
	}
	return times
}

// A window is the samples at the ring's head in order, read without
// consuming them; AdvanceRun consumes a prefix of it, counted from the
// window's first sample, in steps, and the next window starts after it.
func TestPeekRunWindow(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 2, 8)
		require.NoError(t, sim.Sample(1, 5, []byte{0xAA}, nil))
		beginIf(t, sim, session)
		dst := make([]PerfSample, 5)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 5, n, "a full window")
		for k := range n {
			requireRunSample(t, dst[k], 0, k)
		}
		again := make([]PerfSample, 5)
		n, err = sim.PeekRun(0, nil, again)
		require.NoError(t, err)
		require.Equal(t, 5, n)
		require.Equal(t, dst, again, "PeekRun consumes nothing")
		require.Zero(t, sim.Stats().Samples)

		adv, err := sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv)
		for _, k := range []int{2, 1, 0} {
			adv, err = sim.AdvanceRun(0, k)
			require.NoError(t, err)
			require.False(t, adv, "n %d is not above the 2 consumed", k)
		}
		if !session {
			require.Equal(t, uint64(2), sim.Stats().Samples)
		}
		adv, err = sim.AdvanceRun(0, 5)
		require.NoError(t, err)
		require.True(t, adv, "2 then 5: 5 in all")
		_, err = sim.AdvanceRun(0, 6)
		require.ErrorIs(t, err, unix.EINVAL, "past the window")
		adv, err = sim.AdvanceRun(0, -1)
		require.ErrorIs(t, err, unix.EINVAL, "a negative count")
		require.EqualError(t, err, "ringbuf: advance run: negative count: invalid argument")
		require.False(t, adv)
		adv, err = sim.AdvanceRun(0, 5)
		require.NoError(t, err)
		require.False(t, adv)
		if session {
			require.Zero(t, sim.Stats().Samples, "counted at End")
		} else {
			require.Equal(t, uint64(5), sim.Stats().Samples)
		}

		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 3, n, "what is left")
		for j := range n {
			requireRunSample(t, dst[j], 0, 5+j)
		}
		adv, err = sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)
		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		requireRunSample(t, dst[0], 0, 6)
		requireRunSample(t, dst[1], 0, 7)
		adv, err = sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv)

		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Zero(t, n, "ring 0 is dry")
		adv, err = sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.False(t, adv, "an empty window: nothing to advance")

		n, err = sim.PeekRun(1, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 1, n, "ring 1 untouched")
		require.Equal(t, 1, dst[0].CPU)
		require.Equal(t, uint64(5), dst[0].Time)
		require.Equal(t, byte(0xAA), dst[0].Data[0])
		if session {
			require.Zero(t, sim.Stats().Samples)
		}
		endIf(t, sim, session)
		require.Equal(t, uint64(8), sim.Stats().Samples)
		require.True(t, sim.Pending(), "ring 1's sample is left")
		require.Equal(t, []uint64{5}, drainRuns(t, sim, 1, 3))
		require.False(t, sim.Pending())
	})
}

// AdvanceRun with no PeekRun before it, or with n 0, consumes nothing and
// is no error.
func TestAdvanceRunWithoutPeekRun(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 1, 3)
		beginIf(t, sim, session)
		for _, n := range []int{1, 0, 3} {
			adv, err := sim.AdvanceRun(0, n)
			require.NoError(t, err, "n %d", n)
			require.False(t, adv, "n %d", n)
		}
		dst := make([]PerfSample, 2)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		requireRunSample(t, dst[0], 0, 0)
		adv, err := sim.AdvanceRun(0, 0)
		require.NoError(t, err)
		require.False(t, adv)
		endIf(t, sim, session)
		require.Zero(t, sim.Stats().Samples)
		require.Equal(t, runTimes(0, 3), drainRuns(t, sim, 0, 2))
	})
}

// Lost records before the first sample are consumed and reported once;
// one after samples ends the window, and is reported by the PeekRun that
// comes to it, which goes on with the samples behind it.
func TestPeekRunLost(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		require.NoError(t, sim.Lost(0, 3))
		require.NoError(t, sim.Lost(0, 4))
		require.NoError(t, sim.Sample(0, 1, []byte{1}, nil))
		require.NoError(t, sim.Sample(0, 2, []byte{2}, nil))
		require.NoError(t, sim.Lost(0, 5))
		require.NoError(t, sim.Sample(0, 3, []byte{3}, nil))
		require.NoError(t, sim.Sample(0, 4, []byte{4}, nil))
		beginIf(t, sim, session)
		var lost []uint64
		lostFn := func(cpu int, n uint64) {
			require.Zero(t, cpu)
			lost = append(lost, n)
		}
		dst := make([]PerfSample, 8)
		for range 3 {
			n, err := sim.PeekRun(0, lostFn, dst)
			require.NoError(t, err)
			require.Equal(t, 2, n, "the window ends at the lost record")
			require.Equal(t, uint64(1), dst[0].Time)
			require.Equal(t, uint64(2), dst[1].Time)
			require.Equal(t, []uint64{3, 4}, lost, "reported once")
			require.Equal(t, uint64(7), sim.Stats().Lost, "counted once")
		}
		adv, err := sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv)
		require.Equal(t, []uint64{3, 4}, lost, "AdvanceRun reads no further")

		n, err := sim.PeekRun(0, lostFn, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, uint64(3), dst[0].Time)
		require.Equal(t, byte(4), dst[1].Data[0])
		require.Equal(t, []uint64{3, 4, 5}, lost)
		n, err = sim.PeekRun(0, lostFn, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.Equal(t, []uint64{3, 4, 5}, lost)
		adv, err = sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv)
		n, err = sim.PeekRun(0, lostFn, dst)
		require.NoError(t, err)
		require.Zero(t, n)

		// A ring of nothing but lost records: all reported, no window.
		require.NoError(t, sim.Lost(0, 6))
		n, err = sim.PeekRun(0, lostFn, dst)
		require.NoError(t, err)
		require.Zero(t, n)
		require.Equal(t, []uint64{3, 4, 5, 6}, lost)
		endIf(t, sim, session)
		st := sim.Stats()
		require.Equal(t, uint64(18), st.Lost)
		require.Equal(t, uint64(4), st.Samples)
		require.False(t, sim.Pending())
	})
}

// A corrupt header inside a window ends the window with no error; the
// PeekRun that reaches it reports it as Peek does (the same error) and
// resynchronises the ring, which is usable again. At the window's front
// it is reported at once.
func TestPeekRunCorrupt(t *testing.T) {
	// peekErr is the error Peek gives for a corrupt record behind the
	// samples at the ring's head: PeekRun's must be the same.
	peekErr := func(t *testing.T, samples int) error {
		sim := runSim(t, 1, samples)
		require.NoError(t, sim.Corrupt(0))
		for range samples {
			_, ok, err := sim.Peek(0, nil)
			require.NoError(t, err)
			require.True(t, ok)
			adv, err := sim.Advance(0)
			require.NoError(t, err)
			require.True(t, adv)
		}
		_, ok, err := sim.Peek(0, nil)
		require.False(t, ok)
		require.ErrorIs(t, err, ErrCorrupt)
		return err
	}
	forSessions(t, func(t *testing.T, session bool) {
		want := peekErr(t, 2)
		sim := runSim(t, 1, 2)
		require.NoError(t, sim.Corrupt(0))
		require.NoError(t, sim.Sample(0, 99, []byte{9}, nil))
		beginIf(t, sim, session)
		dst := make([]PerfSample, 8)
		for range 2 {
			n, err := sim.PeekRun(0, nil, dst)
			require.NoError(t, err, "the window ends before the corrupt record")
			require.Equal(t, 2, n)
			requireRunSample(t, dst[1], 0, 1)
		}
		require.Zero(t, sim.Stats().Resyncs)
		adv, err := sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		requireRunSample(t, dst[0], 0, 1)
		adv, err = sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)

		n, err = sim.PeekRun(0, nil, dst)
		require.ErrorIs(t, err, ErrCorrupt)
		require.EqualError(t, err, want.Error(), "reported as Peek reports it")
		require.Zero(t, n)
		require.Equal(t, uint64(1), sim.Stats().Resyncs)
		require.False(t, sim.Pending(), "resynchronised: the sample behind is dropped")
		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Zero(t, n)

		require.NoError(t, sim.Sample(0, 100, []byte{10}, nil))
		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Equal(t, uint64(100), dst[0].Time)
		adv, err = sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)
		endIf(t, sim, session)
		require.Equal(t, uint64(3), sim.Stats().Samples)
		require.False(t, sim.Pending())
	})
	forSessions(t, func(t *testing.T, session bool) {
		want := peekErr(t, 0)
		sim := runSim(t, 1, 0)
		require.NoError(t, sim.Corrupt(0))
		require.NoError(t, sim.Sample(0, 99, []byte{9}, nil))
		beginIf(t, sim, session)
		n, err := sim.PeekRun(0, nil, make([]PerfSample, 4))
		require.ErrorIs(t, err, ErrCorrupt, "at the front: at once")
		require.EqualError(t, err, want.Error())
		require.Zero(t, n)
		adv, err := sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.False(t, adv)
		endIf(t, sim, session)
		require.Equal(t, uint64(1), sim.Stats().Resyncs)
		require.False(t, sim.Pending())
	})
}

// simRecord publishes on ring i of sim a record of type typ and size
// bytes, zero past its header: one of the types a reader skips.
func simRecord(t *testing.T, sim *PerfSim, i int, typ uint32, size int) {
	t.Helper()
	r := sim.rings[i]
	require.True(t, room(r, uint64(size)))
	rec := make([]byte, size)
	binary.NativeEndian.PutUint32(rec, typ)
	binary.NativeEndian.PutUint16(rec[6:], uint16(size))
	storeRelease(r.head, put(r, loadAcquire(r.head), rec))
}

// The window ends at any record that is not a sample, also at one that
// would pass for a sample (an untimed ring's lost record, whose id word
// reads as a raw size of 0): the next PeekRun consumes and reports it,
// or skips it, and goes on with the samples behind.
func TestPeekRunEndsAtOtherRecords(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, false)
		require.NoError(t, err)
		defer sim.Close()
		for k := range 2 {
			require.NoError(t, sim.Sample(0, 0, []byte{byte(k)}, nil))
		}
		require.NoError(t, sim.Lost(0, 5))
		require.NoError(t, sim.Sample(0, 0, []byte{2}, nil))
		simRecord(t, sim, 0, 3, 32)
		require.NoError(t, sim.Sample(0, 0, []byte{3}, nil))
		beginIf(t, sim, session)
		var lost uint64
		lostFn := func(_ int, n uint64) { lost += n }
		dst := make([]PerfSample, 8)
		var windows [][]byte
		for range 10 {
			n, err := sim.PeekRun(0, lostFn, dst)
			require.NoError(t, err)
			if n == 0 {
				break
			}
			var w []byte
			for _, s := range dst[:n] {
				require.Len(t, s.Data, 4)
				w = append(w, s.Data[0])
			}
			windows = append(windows, w)
			adv, err := sim.AdvanceRun(0, n)
			require.NoError(t, err)
			require.True(t, adv)
		}
		require.Equal(t, [][]byte{{0, 1}, {2}, {3}}, windows)
		require.Equal(t, uint64(5), lost)
		endIf(t, sim, session)
		require.Equal(t, PerfStats{Samples: 4, Lost: 5, Skipped: 1}, sim.Stats())
	})
}

// A sample whose raw size runs past its record, after sound ones: the
// window ends before it, and the PeekRun that reaches it reports it as
// Peek does and resynchronises.
func TestPeekRunBadSample(t *testing.T) {
	// bad writes sample k and makes its raw size field claim more bytes
	// than its record holds.
	bad := func(t *testing.T, sim *PerfSim, k int) {
		r := sim.rings[0]
		at := loadAcquire(r.head)&r.mask + perfHeaderSize + perfTimeSize
		require.NoError(t, sim.Sample(0, uint64(10*(k+1)), payloadOf(k, runSize(k)), nil))
		binary.NativeEndian.PutUint32(r.data[at:], 1000)
	}
	peekSim := runSim(t, 1, 0)
	bad(t, peekSim, 0)
	_, _, want := peekSim.Peek(0, nil)
	require.ErrorIs(t, want, ErrCorrupt)
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 1, 3)
		bad(t, sim, 3)
		require.NoError(t, sim.Sample(0, 50, payloadOf(4, runSize(4)), nil))
		beginIf(t, sim, session)
		dst := make([]PerfSample, 8)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		requireRunSample(t, dst[2], 0, 2)
		adv, err := sim.AdvanceRun(0, 3)
		require.NoError(t, err)
		require.True(t, adv)
		n, err = sim.PeekRun(0, nil, dst)
		require.EqualError(t, err, want.Error())
		require.ErrorIs(t, err, ErrCorrupt)
		require.Zero(t, n)
		endIf(t, sim, session)
		require.Equal(t, PerfStats{Samples: 3, Resyncs: 1}, sim.Stats())
		require.False(t, sim.Pending())
	})
}

// A header whose size runs past the published head, after sound samples,
// and a head found a lap ahead of the tail when the window reads the head
// again: each ends the window before it, with no error, and the PeekRun
// that comes to it reports the corruption and resynchronises the ring.
func TestPeekRunCorruptPositions(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 1, 2)
		r := sim.rings[0]
		at := loadAcquire(r.head) & r.mask
		require.NoError(t, sim.Sample(0, 30, payloadOf(2, runSize(2)), nil))
		binary.NativeEndian.PutUint16(r.data[at+6:], 2048)
		beginIf(t, sim, session)
		dst := make([]PerfSample, 8)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		adv, err := sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv)
		n, err = sim.PeekRun(0, nil, dst)
		require.ErrorIs(t, err, ErrCorrupt)
		require.Zero(t, n)
		endIf(t, sim, session)
		require.Equal(t, PerfStats{Samples: 2, Resyncs: 1}, sim.Stats())
		require.False(t, sim.Pending())
	})
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 1, 1)
		r := sim.rings[0]
		beginIf(t, sim, session)
		// The cursor holds sample 0 and has read the head just past it.
		_, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		for k := 1; k < 4; k++ {
			require.NoError(t, sim.Sample(0, uint64(10*(k+1)), payloadOf(k, runSize(k)), nil))
		}
		head := loadAcquire(r.head) + uint64(len(r.data))
		storeRelease(r.head, head)
		dst := make([]PerfSample, 8)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 1, n, "nothing past the head read before")
		requireRunSample(t, dst[0], 0, 0)
		adv, err := sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)
		n, err = sim.PeekRun(0, nil, dst)
		require.ErrorIs(t, err, ErrCorrupt)
		require.Zero(t, n)
		endIf(t, sim, session)
		require.Equal(t, PerfStats{Samples: 1, Resyncs: 1}, sim.Stats())
		require.Equal(t, head, loadAcquire(r.tail), "resynchronised to the head")
	})
}

// A window may run past the head its ring's cursor last read (records
// published after a Peek held the head, or after an earlier window):
// advancing past them leaves the cursor sound, so the records written
// after them come next, and nothing is read twice or past the head.
func TestPeekRunPastHeadRead(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		for _, held := range []bool{false, true} {
			sim := runSim(t, 1, 1)
			beginIf(t, sim, session)
			dst := make([]PerfSample, 8)
			if held {
				_, ok, err := sim.Peek(0, nil)
				require.NoError(t, err)
				require.True(t, ok)
			} else {
				n, err := sim.PeekRun(0, nil, dst)
				require.NoError(t, err)
				require.Equal(t, 1, n)
			}
			for k := 1; k < 4; k++ {
				require.NoError(t, sim.Sample(0, uint64(10*(k+1)), payloadOf(k, runSize(k)), nil))
			}
			n, err := sim.PeekRun(0, nil, dst)
			require.NoError(t, err)
			require.Equal(t, 4, n, "held %v", held)
			requireRunSample(t, dst[3], 0, 3)
			adv, err := sim.AdvanceRun(0, 4)
			require.NoError(t, err)
			require.True(t, adv)
			var got timesOf
			n, ok, err := sim.ConsumeUntil(0, math.MaxUint64, got.handler(), nil)
			require.NoError(t, err)
			require.Zero(t, n, "held %v", held)
			require.False(t, ok)
			require.NoError(t, sim.Sample(0, 50, payloadOf(4, runSize(4)), nil))
			require.Equal(t, []uint64{50}, drainRuns(t, sim, 0, 3))
			endIf(t, sim, session)
			require.Equal(t, uint64(5), sim.Stats().Samples)
			require.False(t, sim.Pending())
		}
	})
}

// Windows over a one-page ring that wraps many times, with samples of
// varying sizes, windows of 1 to 7 and advances of part of each: every
// sample comes exactly once, whole and in order, also the ones that wrap
// the ring's end (reassembled) and windows that span it; and the producer
// writing on while a window is out (into the room it has) leaves the
// window's samples as they were.
func TestPeekRunWrap(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		ring := sim.rings[0]
		size := func(seq int) int { return 1 + seq*37%181 }
		sent, next := 0, 0
		fill := func() {
			for {
				err := sim.Sample(0, uint64(sent), payloadOf(sent, size(sent)), nil)
				if err != nil {
					require.ErrorIs(t, err, unix.EAGAIN)
					return
				}
				sent++
			}
		}
		check := func(s PerfSample, seq int) {
			t.Helper()
			if s.CPU != 0 || s.Time != uint64(seq) || len(s.Data) < size(seq) || !bytes.Equal(s.Data[:size(seq)], payloadOf(seq, size(seq))) {
				t.Fatalf("sample %d: CPU %d, time %d, %d bytes %x", seq, s.CPU, s.Time, len(s.Data), s.Data)
			}
		}
		start := uintptr(unsafe.Pointer(&ring.data[0]))
		offset := func(s PerfSample) uintptr { return uintptr(unsafe.Pointer(&s.Data[0])) - start }
		dst := make([]PerfSample, 7)
		wrapped, spanning := 0, 0
		for step := 0; next < 3000; step++ {
			require.Less(t, step, 10000)
			fill()
			beginIf(t, sim, session)
			n, err := sim.PeekRun(0, nil, dst[:1+step%len(dst)])
			require.NoError(t, err)
			require.Positive(t, n)
			span := false
			for j, s := range dst[:n] {
				check(s, next+j)
				switch {
				case within(s.Data, ring.scratch):
					wrapped++
					span = span || n > 1
				case !within(s.Data, ring.data):
					t.Fatalf("sample %d outside the ring", next+j)
				case j > 0 && within(dst[j-1].Data, ring.data) && offset(s) < offset(dst[j-1]):
					span = true
				}
			}
			if span {
				spanning++
			}
			fill()
			for j, s := range dst[:n] {
				check(s, next+j)
			}
			k := 1 + step%n
			adv, err := sim.AdvanceRun(0, k)
			require.NoError(t, err)
			require.True(t, adv)
			next += k
			endIf(t, sim, session)
		}
		beginIf(t, sim, session)
		for {
			n, err := sim.PeekRun(0, nil, dst)
			require.NoError(t, err)
			if n == 0 {
				break
			}
			for j, s := range dst[:n] {
				check(s, next+j)
			}
			adv, err := sim.AdvanceRun(0, n)
			require.NoError(t, err)
			require.True(t, adv)
			next += n
		}
		endIf(t, sim, session)
		require.Equal(t, sent, next)
		require.Positive(t, wrapped, "no sample wrapped the ring's end")
		require.Positive(t, spanning, "no window spanned the ring's end")
		require.Equal(t, uint64(sent), sim.Stats().Samples)
		require.False(t, sim.Pending())
	})
}

// A call that consumes from the ring after a PeekRun (Consume, ConsumeUntil,
// Peek and Advance) or holds its head (Peek, a ConsumeUntil that stops at
// the first sample) leaves the window stale: AdvanceRun consumes nothing,
// and every sample still comes once. One that consumed nothing (a Consume
// refused inside a session) or a session's edge leaves it valid.
func TestPeekRunInvalidated(t *testing.T) {
	t.Run("Consume", func(t *testing.T) {
		sim := runSim(t, 1, 5)
		dst := make([]PerfSample, 3)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		var got timesOf
		n, err = sim.Consume(got.handler())
		require.NoError(t, err)
		require.Equal(t, 5, n)
		require.Equal(t, runTimes(0, 5), got.times)
		adv, err := sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.False(t, adv)
		require.Equal(t, uint64(5), sim.Stats().Samples)
		require.NoError(t, sim.Sample(0, 60, payloadOf(5, runSize(5)), nil))
		adv, err = sim.AdvanceRun(0, 3)
		require.NoError(t, err)
		require.False(t, adv)
		require.Equal(t, []uint64{60}, drainRuns(t, sim, 0, 3))
	})
	t.Run("ConsumeRefused", func(t *testing.T) {
		sim := runSim(t, 1, 5)
		require.NoError(t, sim.Begin())
		dst := make([]PerfSample, 3)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		_, err = sim.Consume(Handler{})
		require.ErrorIs(t, err, unix.EBUSY)
		adv, err := sim.AdvanceRun(0, 3)
		require.NoError(t, err)
		require.True(t, adv, "a Consume that consumed nothing")
		require.NoError(t, sim.End())
		require.Equal(t, runTimes(3, 5), drainRuns(t, sim, 0, 3))
	})
	t.Run("AcrossSessions", func(t *testing.T) {
		sim := runSim(t, 1, 5)
		dst := make([]PerfSample, 2)
		require.NoError(t, sim.Begin())
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		require.NoError(t, sim.End())
		adv, err := sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv, "a window from a session, advanced outside")
		n, err = sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		requireRunSample(t, dst[0], 0, 1)
		require.NoError(t, sim.Begin())
		adv, err = sim.AdvanceRun(0, 2)
		require.NoError(t, err)
		require.True(t, adv, "a window from outside, advanced in a session")
		require.NoError(t, sim.End())
		require.Equal(t, uint64(3), sim.Stats().Samples)
		require.Equal(t, runTimes(3, 5), drainRuns(t, sim, 0, 3))
	})
	forSessions(t, func(t *testing.T, session bool) {
		cases := []struct {
			name string
			// between runs after the PeekRun of 3 of 5 samples and returns
			// the times it delivered.
			between func(t *testing.T, sim *PerfSim) []uint64
		}{
			{"ConsumeUntil", func(t *testing.T, sim *PerfSim) []uint64 {
				var got timesOf
				n, ok, err := sim.ConsumeUntil(0, 25, got.handler(), nil)
				require.NoError(t, err)
				require.Equal(t, 2, n)
				require.True(t, ok)
				return got.times
			}},
			{"ConsumeUntilHolds", func(t *testing.T, sim *PerfSim) []uint64 {
				n, ok, err := sim.ConsumeUntil(0, 5, Handler{}, nil)
				require.NoError(t, err)
				require.Zero(t, n)
				require.True(t, ok, "holds the first sample")
				return nil
			}},
			{"PeekAdvance", func(t *testing.T, sim *PerfSim) []uint64 {
				s, ok, err := sim.Peek(0, nil)
				require.NoError(t, err)
				require.True(t, ok)
				requireRunSample(t, s, 0, 0)
				adv, err := sim.Advance(0)
				require.NoError(t, err)
				require.True(t, adv)
				return []uint64{s.Time}
			}},
			{"Peek", func(t *testing.T, sim *PerfSim) []uint64 {
				s, ok, err := sim.Peek(0, nil)
				require.NoError(t, err)
				require.True(t, ok)
				requireRunSample(t, s, 0, 0)
				return nil
			}},
			{"Next", func(t *testing.T, sim *PerfSim) []uint64 {
				var s PerfSample
				ok, err := sim.Next(0, nil, &s)
				require.NoError(t, err)
				require.True(t, ok)
				requireRunSample(t, s, 0, 0)
				return nil
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				sim := runSim(t, 1, 5)
				beginIf(t, sim, session)
				n, err := sim.PeekRun(0, nil, make([]PerfSample, 3))
				require.NoError(t, err)
				require.Equal(t, 3, n)
				got := c.between(t, sim)
				adv, err := sim.AdvanceRun(0, 3)
				require.NoError(t, err)
				require.False(t, adv, "the window is stale")
				// What the call holds, if anything, is the ring's head
				// still: Advance consumes it, and then the windows go on.
				held, err := sim.Advance(0)
				require.NoError(t, err)
				if held {
					got = append(got, runTimes(len(got), len(got)+1)...)
				}
				got = append(got, drainRuns(t, sim, 0, 3)...)
				require.Equal(t, runTimes(0, 5), got, "every sample once, in order")
				endIf(t, sim, session)
				require.Equal(t, uint64(5), sim.Stats().Samples)
				require.False(t, sim.Pending())
			})
		}
	})
}

// PeekRun takes over a head held by Peek as its first sample: the held
// sample is the window's, Advance then has nothing to consume, and no
// sample is lost or comes twice.
func TestPeekRunReplacesHeld(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim := runSim(t, 1, 5)
		beginIf(t, sim, session)
		held, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		dst := make([]PerfSample, 3)
		n, err := sim.PeekRun(0, nil, dst)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		require.Equal(t, held, dst[0])
		requireRunSample(t, dst[2], 0, 2)
		adv, err := sim.Advance(0)
		require.NoError(t, err)
		require.False(t, adv, "the window replaced the held head")
		adv, err = sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.True(t, adv)
		s, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		requireRunSample(t, s, 0, 1)
		require.Equal(t, runTimes(1, 5), drainRuns(t, sim, 0, 3))
		endIf(t, sim, session)
		require.Equal(t, uint64(5), sim.Stats().Samples)
		require.False(t, sim.Pending())
	})
}

// Bad calls: a ring out of range wraps EINVAL, a call from a Consume's
// handler EBUSY, a closed sim os.ErrClosed; an empty dst is no error and
// consumes nothing, not even the lost records in front; a Close inside a
// session makes PeekRun find nothing.
func TestPeekRunErrors(t *testing.T) {
	sim, err := NewPerfSim(2, 1, true)
	require.NoError(t, err)
	require.NoError(t, sim.Lost(0, 2))
	require.NoError(t, sim.Sample(0, 1, []byte{1}, nil))
	require.NoError(t, sim.Sample(1, 2, []byte{2}, nil))
	lost := 0
	lostFn := func(int, uint64) { lost++ }
	dst := make([]PerfSample, 2)
	for _, session := range []bool{false, true} {
		beginIf(t, sim, session)
		for _, i := range []int{-1, 2, math.MaxInt} {
			_, err = sim.PeekRun(i, lostFn, dst)
			require.ErrorIs(t, err, unix.EINVAL, "ring %d, session %v", i, session)
			_, err = sim.AdvanceRun(i, 1)
			require.ErrorIs(t, err, unix.EINVAL, "ring %d, session %v", i, session)
		}
		for _, d := range [][]PerfSample{nil, dst[:0]} {
			n, err := sim.PeekRun(0, lostFn, d)
			require.NoError(t, err)
			require.Zero(t, n)
		}
		adv, err := sim.AdvanceRun(0, 1)
		require.NoError(t, err)
		require.False(t, adv)
		endIf(t, sim, session)
	}
	require.Zero(t, lost)
	require.Equal(t, PerfStats{}, sim.Stats(), "nothing consumed")

	var inner, innerAdv error
	n, err := sim.Consume(Handler{Sample: func(cpu int, _ []byte) {
		if cpu == 0 {
			_, inner = sim.PeekRun(1, nil, dst)
			_, innerAdv = sim.AdvanceRun(1, 1)
		}
	}})
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.ErrorIs(t, inner, unix.EBUSY)
	require.ErrorIs(t, innerAdv, unix.EBUSY)

	require.NoError(t, sim.Sample(1, 3, []byte{3}, nil))
	require.NoError(t, sim.Begin())
	require.NoError(t, sim.Close())
	n, err = sim.PeekRun(1, nil, dst)
	require.NoError(t, err)
	require.Zero(t, n, "closed inside the session: nothing more")
	require.ErrorIs(t, sim.End(), os.ErrClosed)
	_, err = sim.PeekRun(1, nil, dst)
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = sim.AdvanceRun(1, 1)
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = sim.PeekRun(1, nil, nil)
	require.ErrorIs(t, err, os.ErrClosed)
}

// A window and its advance allocate nothing once the ring has had a
// window that long, with lost records on the way, and windows that wrap.
func TestPeekRunAllocatesNothing(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		defer sim.Close()
		payload := make([]byte, 60)
		dst := make([]PerfSample, 8)
		lost := uint64(0)
		lostFn := func(_ int, n uint64) { lost += n }
		at := uint64(0)
		round := func() {
			if err := sim.Lost(0, 1); err != nil {
				t.Fatal(err)
			}
			for range 8 {
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
			n, err := sim.PeekRun(0, lostFn, dst)
			if n != 8 || err != nil || dst[7].Time != at {
				t.Fatalf("window: %d %v", n, err)
			}
			for _, k := range []int{3, 8} {
				if adv, err := sim.AdvanceRun(0, k); !adv || err != nil {
					t.Fatalf("advance to %d: %v %v", k, adv, err)
				}
			}
			if session {
				if err := sim.End(); err != nil {
					t.Fatal(err)
				}
			}
		}
		round() // the window's positions are allocated once
		allocs := testing.AllocsPerRun(200, round)
		require.Zero(t, allocs)
		require.Equal(t, at, sim.Stats().Samples)
		require.Equal(t, at/8, lost)
		require.False(t, sim.Pending())
	})
}

// Records the kernel writes into a timed one-page reader, over rounds that
// wrap the ring's end at many offsets, drained in windows of 3 with an
// advance of part of each: every record comes once, whole and in order,
// with a time never behind the one before; then the reader's own errors.
func TestPerfPeekRunKernel(t *testing.T) {
	forSessions(t, func(t *testing.T, session bool) {
		m := newPerfArray(t)
		cpu := testCPUs(t)[0]
		r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}, Timestamps: true})
		sizes := []int{61, 200, 8}
		var prods []*bpftest.Producer
		for _, n := range sizes {
			p, err := bpftest.NewPerfProducer(m, n)
			prods = append(prods, newProducer(t, p, err))
		}
		lostFn := func(c int, n uint64) { t.Fatalf("CPU %d lost %d records", c, n) }
		dst := make([]PerfSample, 3)
		sent, next, wrapped := 0, 0, 0
		var last uint64
		for round := range 40 {
			emitOn(t, cpu, func() {
				buf := make([]byte, 256)
				// About 1.4 KiB per round: never fills the 4 KiB ring.
				for range 12 {
					p := prods[sent%len(sizes)]
					if err := p.Emit(record(buf, cpu, sent)[:max(p.RecordSize(), 8)]); err != nil {
						t.Error(err)
						return
					}
					sent++
				}
			})
			require.NoError(t, r.ClearWakeup())
			if session {
				require.NoError(t, r.Begin())
			}
			for step := 0; ; step++ {
				require.Less(t, step, 100)
				n, err := r.PeekRun(0, lostFn, dst)
				require.NoError(t, err)
				if n == 0 {
					break
				}
				for j, s := range dst[:n] {
					seq, size := next+j, sizes[(next+j)%len(sizes)]
					require.Equal(t, cpu, s.CPU)
					require.Len(t, s.Data, bpftest.PerfRawSize(size), "record %d", seq)
					require.Equal(t, record(make([]byte, size), cpu, seq), s.Data[:size], "record %d", seq)
					require.GreaterOrEqual(t, s.Time, last, "record %d", seq)
					last = s.Time
					switch {
					case within(s.Data, r.mmaps[0]):
					case within(s.Data, r.rings[0].scratch):
						wrapped++
					default:
						t.Fatalf("record %d outside the ring and its scratch buffer", seq)
					}
				}
				k := 1 + (round+step)%n
				adv, err := r.AdvanceRun(0, k)
				require.NoError(t, err)
				require.True(t, adv)
				next += k
				last = dst[k-1].Time
			}
			if session {
				require.NoError(t, r.End())
			}
			require.Equal(t, sent, next, "round %d", round)
			require.False(t, r.Pending())
		}
		require.Positive(t, wrapped, "no record wrapped the ring's end")
		require.Equal(t, PerfStats{Samples: uint64(sent)}, r.Stats())

		_, err := r.PeekRun(1, nil, dst)
		require.ErrorIs(t, err, unix.EINVAL)
		_, err = r.AdvanceRun(-1, 1)
		require.ErrorIs(t, err, unix.EINVAL)
		n, err := r.PeekRun(0, nil, nil)
		require.NoError(t, err)
		require.Zero(t, n)
		require.NoError(t, r.Close())
		_, err = r.PeekRun(0, nil, dst)
		require.ErrorIs(t, err, os.ErrClosed)
		_, err = r.AdvanceRun(0, 1)
		require.ErrorIs(t, err, os.ErrClosed)
	})
}

// fuzzPeekRun reads ring contents mem between tail and head (as the raw
// fuzz targets lay them out) with Consume, and again, from the same bytes,
// with PeekRun windows of 1 to 4 samples, outside a session and inside
// one. The windows must deliver what Consume does: the same samples in the
// same order, the same lost total, an error (wrapping ErrCorrupt) just
// when Consume has one, the same counts in the stats, and the tail at the
// head at the end. No window's sample may lie outside the ring or its
// scratch buffer, a repeated PeekRun returns the same window and reports
// nothing again, and AdvanceRun consumes exactly the prefix it is given.
func fuzzPeekRun(t *testing.T, shift uint8, tail, head uint64, mem []byte, timed bool) {
	size := 8 << (shift % 10)
	window := 1 + int(shift/10)%4
	load := func() *simPerf {
		s := newSimPerf(t, size, 0)
		s.ring.timed = timed
		copy(s.data, mem)
		*u64At(s.meta, perfOffDataTail) = tail
		*u64At(s.meta, perfOffDataHead) = head
		return s
	}
	type sample struct {
		at   uint64
		data []byte
	}
	s := load()
	var want []sample
	var wantLost uint64
	_, wantErr := s.consume(Handler{
		SampleAt: func(_ int, at uint64, d []byte) { want = append(want, sample{at, bytes.Clone(d)}) },
		Lost:     func(_ int, n uint64) { wantLost += n },
	})
	wantStats := s.c.load()
	same := func(a, b PerfSample) bool {
		return a.CPU == b.CPU && a.Time == b.Time && len(a.Data) == len(b.Data) && unsafe.SliceData(a.Data) == unsafe.SliceData(b.Data)
	}
	for _, session := range []bool{false, true} {
		s := load()
		rings := []*perfRing{s.ring}
		ps := peekSession{open: session}
		if session {
			s.ring.sync()
		}
		var got []sample
		var lost uint64
		lostFn := func(_ int, n uint64) { lost += n }
		dst := make([]PerfSample, window)
		again := make([]PerfSample, window)
		var errs []error
		for i := 0; ; i++ {
			if i > size {
				t.Fatal("more windows than the ring holds records")
			}
			n, err := peekRunRing(rings, 0, lostFn, &s.c, &s.g, dst, session)
			if err != nil {
				if n != 0 || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("window of %d, error %v", n, err)
				}
				errs = append(errs, err)
				continue
			}
			if n == 0 {
				break
			}
			if n > window {
				t.Fatalf("window of %d in a dst of %d", n, window)
			}
			for _, ps := range dst[:n] {
				if ps.CPU != s.ring.cpu || uint64(len(ps.Data)) > s.size || !(within(ps.Data, s.data) || within(ps.Data, s.ring.scratch)) {
					t.Fatalf("sample of %d bytes on CPU %d outside the ring", len(ps.Data), ps.CPU)
				}
				if !timed && ps.Time != 0 {
					t.Fatalf("untimed sample at %d", ps.Time)
				}
			}
			lostBefore := lost
			m, err := peekRunRing(rings, 0, lostFn, &s.c, &s.g, again, session)
			if err != nil || m != n || lost != lostBefore {
				t.Fatalf("second PeekRun: %d samples (first %d), error %v, lost %d (first %d)", m, n, err, lost, lostBefore)
			}
			for j := range n {
				if !same(dst[j], again[j]) {
					t.Fatalf("second PeekRun: sample %d differs", j)
				}
				got = append(got, sample{dst[j].Time, bytes.Clone(dst[j].Data)})
			}
			k := 1 + i%n
			if adv, err := ps.advanceRun(rings, 0, k, &s.c); !adv || err != nil {
				t.Fatalf("advance %d of %d: %v %v", k, n, adv, err)
			}
			if adv, err := ps.advanceRun(rings, 0, k, &s.c); adv || err != nil {
				t.Fatalf("advance %d again: %v %v", k, adv, err)
			}
			if _, err := ps.advanceRun(rings, 0, n+1, &s.c); !errors.Is(err, unix.EINVAL) {
				t.Fatalf("advance past a window of %d: %v", n, err)
			}
			if k < n {
				if adv, err := ps.advanceRun(rings, 0, n, &s.c); !adv || err != nil {
					t.Fatalf("advance %d then %d: %v %v", k, n, adv, err)
				}
			}
		}
		if session {
			if err := ps.end(&s.c, rings); err != nil {
				t.Fatal(err)
			}
		}
		if len(errs) > 1 || (len(errs) == 1) != (wantErr != nil) {
			t.Fatalf("session %v: errors %v, Consume's %v", session, errs, wantErr)
		}
		if len(got) != len(want) || lost != wantLost {
			t.Fatalf("session %v: %d samples and %d lost, Consume %d and %d", session, len(got), lost, len(want), wantLost)
		}
		for j := range got {
			if got[j].at != want[j].at || !bytes.Equal(got[j].data, want[j].data) {
				t.Fatalf("session %v: sample %d at %d %x, Consume's at %d %x", session, j, got[j].at, got[j].data, want[j].at, want[j].data)
			}
		}
		if st := s.c.load(); st != wantStats {
			t.Fatalf("session %v: stats %+v, Consume's %+v", session, st, wantStats)
		}
		if s.tail() != head {
			t.Fatalf("session %v: tail %d, head %d", session, s.tail(), head)
		}
	}
}
