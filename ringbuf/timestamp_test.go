package ringbuf

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

func monoNow(t testing.TB) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return uint64(ts.Nano())
}

// timedReader opens a reader with Timestamps on one CPU, which the test is
// pinned to, and a producer of 16-byte records into its array; both close
// with the test.
func timedReader(t *testing.T) (*PerfReader, *bpftest.Producer, int) {
	t.Helper()
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	pinCPU(t, cpu)
	r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}, Timestamps: true})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	pp, err := bpftest.NewPerfProducer(m, 16)
	return r, newProducer(t, pp, err), cpu
}

// The kernel stamps each sample of a reader opened with Timestamps with
// CLOCK_MONOTONIC: every time lies between clock reads taken before and
// after the emits, and the raw data is parsed past the time word.
func TestPerfTimestampsAreMonotonicClock(t *testing.T) {
	r, p, cpu := timedReader(t)

	before := monoNow(t)
	buf := make([]byte, 16)
	const n = 20
	for i := range n {
		require.NoError(t, p.Emit(record(buf, cpu, i)))
	}
	after := monoNow(t)

	var last uint64
	seq := 0
	got, err := r.Consume(Handler{SampleAt: func(c int, at uint64, data []byte) {
		require.Equal(t, cpu, c)
		require.GreaterOrEqual(t, at, before)
		require.LessOrEqual(t, at, after)
		require.GreaterOrEqual(t, at, last)
		last = at
		require.Equal(t, uint32(seq), getU32(data[4:]))
		require.Equal(t, record(make([]byte, 16), cpu, seq), data[:16])
		seq++
	}})
	require.NoError(t, err)
	require.Equal(t, n, got)
	require.Equal(t, n, seq)
}

// Without Timestamps SampleAt still gets the samples, with time 0.
func TestPerfSampleAtWithoutTimestamps(t *testing.T) {
	s, err := NewPerfSim(1, 1, false)
	require.NoError(t, err)
	require.NoError(t, s.Sample(0, 77, []byte{1, 2, 3, 4}, nil))
	calls := 0
	_, err = s.Consume(Handler{SampleAt: func(_ int, at uint64, data []byte) {
		calls++
		require.Zero(t, at)
		require.Equal(t, []byte{1, 2, 3, 4}, data[:4])
	}})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
}

// Peek holds the head record in place: peeking again returns the same
// record, Advance consumes it, and Pending follows the ring's positions.
func TestPerfPeekAdvanceKernel(t *testing.T) {
	r, p, cpu := timedReader(t)
	require.Equal(t, 1, r.Rings())
	require.False(t, r.Pending())

	buf := make([]byte, 16)
	for i := range 3 {
		require.NoError(t, p.Emit(record(buf, cpu, i)))
	}
	require.True(t, r.Pending())
	require.NoError(t, r.ClearWakeup())
	var prev uint64
	for i := range 3 {
		s1, ok, err := r.Peek(0, nil)
		require.NoError(t, err)
		require.True(t, ok)
		s2, _, _ := r.Peek(0, nil)
		require.Equal(t, s1, s2, "a second Peek returns the held record")
		require.Equal(t, uint32(i), getU32(s1.Data[4:]))
		require.Equal(t, cpu, s1.CPU)
		require.GreaterOrEqual(t, s1.Time, prev)
		prev = s1.Time
		adv, err := r.Advance(0)
		require.NoError(t, err)
		require.True(t, adv)
		adv, _ = r.Advance(0)
		require.False(t, adv, "Advance without a Peek does nothing")
	}
	_, ok, err := r.Peek(0, nil)
	require.NoError(t, err)
	require.False(t, ok)
	require.False(t, r.Pending())
	require.Equal(t, uint64(3), r.Stats().Samples)

	_, _, err = r.Peek(1, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	require.NoError(t, r.Close())
	_, _, err = r.Peek(0, nil)
	require.ErrorIs(t, err, os.ErrClosed)
	require.False(t, r.Pending())
}
