package ringbuf

import (
	"os"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// The simulated ring lays records out as the kernel does: for each payload
// size, one sample moves the sim's head exactly as far as the kernel's, and
// the reader hands over the same raw length, with and without timestamps.
func TestPerfSimLayoutMatchesKernel(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	pinCPU(t, cpu)
	for _, timed := range []bool{false, true} {
		r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}, Timestamps: timed})
		require.NoError(t, err)
		sim, err := NewPerfSim(1, 1, timed)
		require.NoError(t, err)
		for _, size := range []int{1, 4, 5, 8, 13, 16, 61} {
			pp, err := bpftest.NewPerfProducer(m, size)
			require.NoError(t, err)
			payload := record(make([]byte, max(size, 8)), cpu, size)[:size]
			kh0 := atomic.LoadUint64(r.rings[0].head)
			require.NoError(t, pp.Emit(payload))
			kstep := atomic.LoadUint64(r.rings[0].head) - kh0
			sh0 := atomic.LoadUint64(sim.rings[0].head)
			require.NoError(t, sim.Sample(0, 5, payload[:1], payload[1:]))
			sstep := atomic.LoadUint64(sim.rings[0].head) - sh0
			require.Equal(t, kstep, sstep, "record of %d bytes, timed %v", size, timed)

			var kraw, sraw []byte
			_, err = r.Consume(Handler{Sample: func(_ int, d []byte) { kraw = append([]byte(nil), d...) }})
			require.NoError(t, err)
			_, err = sim.Consume(Handler{Sample: func(_ int, d []byte) { sraw = append([]byte(nil), d...) }})
			require.NoError(t, err)
			require.Len(t, sraw, len(kraw))
			require.Equal(t, bpftest.PerfRawSize(size), len(kraw))
			require.Equal(t, payload, sraw[:size])
			require.Equal(t, payload, kraw[:size])
			require.NoError(t, pp.Close())
		}
		require.NoError(t, r.Close())
		require.NoError(t, sim.Close())
	}
}

// Records wrap the end of the ring, a full ring refuses with EAGAIN, a lost
// record reaches Lost, and a corrupt header resynchronises the ring.
func TestPerfSimWrapLostCorrupt(t *testing.T) {
	for _, timed := range []bool{false, true} {
		sim, err := NewPerfSim(2, 1, timed)
		require.NoError(t, err)
		payload := make([]byte, 100)
		var got, lost int
		h := Handler{
			SampleAt: func(cpu int, at uint64, d []byte) {
				require.Equal(t, 1, cpu)
				require.Equal(t, byte(got), d[0])
				require.Equal(t, byte(got), d[99])
				if timed {
					require.Equal(t, uint64(1000+got), at)
				}
				got++
			},
			Lost: func(cpu int, n uint64) { require.Equal(t, 1, cpu); lost += int(n) },
		}
		sent := 0
		// Enough rounds of fill-and-drain to wrap a one-page ring many times.
		for round := 0; round < 20; round++ {
			for {
				for i := range payload {
					payload[i] = byte(sent)
				}
				err := sim.Sample(1, uint64(1000+sent), payload[:3], payload[3:])
				if err != nil {
					require.ErrorIs(t, err, unix.EAGAIN)
					break
				}
				sent++
			}
			require.True(t, sim.Pending())
			_, err := sim.Consume(h)
			require.NoError(t, err)
			require.False(t, sim.Pending())
		}
		require.Equal(t, sent, got)
		require.Greater(t, sent, 20*4096/120/2)

		require.NoError(t, sim.Lost(1, 7))
		require.NoError(t, sim.Lost(1, 2))
		_, err = sim.Consume(h)
		require.NoError(t, err)
		require.Equal(t, 9, lost)
		require.Equal(t, uint64(9), sim.Stats().Lost)

		require.NoError(t, sim.Sample(1, 1, payload[:3], payload[3:]))
		require.NoError(t, sim.Corrupt(1))
		n, err := sim.Consume(Handler{})
		require.ErrorIs(t, err, ErrCorrupt)
		require.Equal(t, 1, n)
		require.Equal(t, uint64(1), sim.Stats().Resyncs)
		require.False(t, sim.Pending())

		require.ErrorIs(t, sim.Sample(2, 0, nil, nil), unix.EINVAL)
		require.ErrorIs(t, sim.Sample(0, 0, make([]byte, 5000), nil), unix.E2BIG)
		require.NoError(t, sim.Close())
		require.ErrorIs(t, sim.Sample(0, 0, nil, nil), os.ErrClosed)
		_, err = sim.Consume(h)
		require.ErrorIs(t, err, os.ErrClosed)
		require.ErrorIs(t, sim.Close(), os.ErrClosed)
	}
}

// Peek and Advance over the sim: lost records before a sample are reported
// on the way, a record wrapping the ring's end comes whole, and none of it
// allocates.
func TestPerfSimPeekAdvance(t *testing.T) {
	sim, err := NewPerfSim(1, 1, true)
	require.NoError(t, err)
	defer sim.Close()
	payload := make([]byte, 200)
	lost := uint64(0)
	lostFn := func(_ int, n uint64) { lost += n }
	i := 0
	allocs := testing.AllocsPerRun(200, func() {
		payload[0], payload[199] = byte(i), byte(i)
		if i%5 == 0 {
			_ = sim.Lost(0, 1)
		}
		if err := sim.Sample(0, uint64(i), payload[:4], payload[4:]); err != nil {
			t.Fatal(err)
		}
		s, ok, err := sim.Peek(0, lostFn)
		if err != nil || !ok || s.Time != uint64(i) || s.Data[0] != byte(i) || s.Data[199] != byte(i) {
			t.Fatalf("peek %d: %+v %v %v", i, s.Time, ok, err)
		}
		if adv, err := sim.Advance(0); !adv || err != nil {
			t.Fatalf("advance %d: %v %v", i, adv, err)
		}
		i++
	})
	require.Zero(t, allocs)
	require.Equal(t, uint64(i+4)/5, lost)
	_, ok, err := sim.Peek(0, nil)
	require.NoError(t, err)
	require.False(t, ok)
}

// Consume over the sim allocates nothing per record either.
func TestPerfSimConsumeAllocs(t *testing.T) {
	sim, err := NewPerfSim(1, 1, true)
	require.NoError(t, err)
	defer sim.Close()
	h := Handler{SampleAt: func(int, uint64, []byte) {}}
	payload := make([]byte, 64)
	allocs := testing.AllocsPerRun(200, func() {
		_ = sim.Sample(0, 1, payload, nil)
		if n, err := sim.Consume(h); n != 1 || err != nil {
			t.Fatal(n, err)
		}
	})
	require.Zero(t, allocs)
}

// Begin claims the reader for Peek and Advance until End: a second Begin
// or a Consume meanwhile is EBUSY, End without Begin EINVAL; a Close inside
// the session makes Peek find nothing and End releases; the samples
// advanced inside are counted at End.
func TestPerfSimBeginEnd(t *testing.T) {
	sim, err := NewPerfSim(1, 1, true)
	require.NoError(t, err)
	require.ErrorIs(t, sim.End(), unix.EINVAL)
	for i := range 3 {
		require.NoError(t, sim.Sample(0, uint64(i), []byte{byte(i)}, nil))
	}
	require.NoError(t, sim.Begin())
	require.ErrorIs(t, sim.Begin(), unix.EBUSY)
	_, err = sim.Consume(Handler{})
	require.ErrorIs(t, err, unix.EBUSY)
	for i := range 2 {
		s, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, uint64(i), s.Time)
		adv, err := sim.Advance(0)
		require.NoError(t, err)
		require.True(t, adv)
	}
	require.Zero(t, sim.Stats().Samples, "counted at End")
	require.NoError(t, sim.End())
	require.Equal(t, uint64(2), sim.Stats().Samples)

	require.NoError(t, sim.Begin())
	require.NoError(t, sim.Close())
	_, ok, err := sim.Peek(0, nil)
	require.NoError(t, err)
	require.False(t, ok, "closed inside the session: nothing more")
	require.ErrorIs(t, sim.End(), os.ErrClosed)
	require.ErrorIs(t, sim.Begin(), os.ErrClosed)
}

// A sample peeked in one session and still held stays held in the next:
// Advance there consumes exactly it, and the records behind it (written
// between the sessions) come next; the space of what a session advanced is
// the kernel's again after End.
func TestPerfSimHeldAcrossSessions(t *testing.T) {
	sim, err := NewPerfSim(2, 1, true)
	require.NoError(t, err)
	defer sim.Close()
	require.NoError(t, sim.Sample(0, 500, []byte{1}, nil))
	require.NoError(t, sim.Begin())
	s, ok, err := sim.Peek(0, nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint64(500), s.Time)
	_, ok, err = sim.Peek(1, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, sim.End())

	require.NoError(t, sim.Sample(0, 600, []byte{2}, nil))
	require.NoError(t, sim.Begin())
	adv, err := sim.Advance(0)
	require.NoError(t, err)
	require.True(t, adv, "the sample held from the last session")
	s, ok, err = sim.Peek(0, nil)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, uint64(600), s.Time)
	adv, err = sim.Advance(0)
	require.NoError(t, err)
	require.True(t, adv)
	_, ok, err = sim.Peek(0, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, sim.End())
	require.False(t, sim.Pending(), "the tail is stored by End")
	require.Equal(t, uint64(2), sim.Stats().Samples)
}

// Next is Advance and then Peek, inside a session and outside one: it
// moves past the held sample, writes the next one in place, and leaves
// *s alone once the ring is dry.
func TestPerfSimNext(t *testing.T) {
	for _, session := range []bool{false, true} {
		sim, err := NewPerfSim(1, 1, true)
		require.NoError(t, err)
		for i := range 3 {
			require.NoError(t, sim.Sample(0, uint64(10+i), []byte{byte(i)}, nil))
		}
		if session {
			require.NoError(t, sim.Begin())
		}
		s, ok, err := sim.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		for i := 1; i < 3; i++ {
			ok, err = sim.Next(0, nil, &s)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, uint64(10+i), s.Time, "session %v", session)
		}
		ok, err = sim.Next(0, nil, &s)
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, uint64(12), s.Time, "untouched when dry")
		_, err = sim.Next(1, nil, &s)
		require.ErrorIs(t, err, unix.EINVAL)
		if session {
			require.NoError(t, sim.End())
		}
		require.False(t, sim.Pending())
		require.Equal(t, uint64(3), sim.Stats().Samples)
		require.NoError(t, sim.Close())
	}
}
