package bpftest

import (
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

var recordSizes = []int{1, 7, 8, 9, 64, 255, 256, 480, MaxRecordSize}

// payload returns n bytes that differ per seq and per position, with the
// first byte even unless odd is set.
func payload(n, seq int, odd bool) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*31 + i*7 + 3)
	}
	b[0] = byte(seq * 2)
	if odd {
		b[0]++
	}
	return b
}

func TestRingProducer(t *testing.T) {
	Require(t)
	for _, size := range recordSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const ringSize = 1 << 14
			m, err := NewRingBuf(ringSize)
			require.NoError(t, err)
			defer m.Close()
			ring := mapTestRing(t, m, ringSize)
			p, err := NewRingProducer(m, size)
			require.NoError(t, err)
			defer p.Close()
			require.Equal(t, size, p.RecordSize())

			var want [][]byte
			for seq := range 3 {
				// Longer than the record: only the first size bytes
				// may land.
				b := payload(size+5, seq, seq == 1)
				require.NoError(t, p.Emit(b))
				want = append(want, b[:size])
			}
			got := ring.drain(t)
			require.Len(t, got, len(want))
			for i, rec := range got {
				assert.False(t, rec.discard)
				assert.Equal(t, want[i], rec.data, "record %d", i)
			}
			assert.Equal(t, Stats{Written: 3}, p.Stats())
		})
	}
}

// TestRingProducerWraps makes the kernel write records across the end of the
// data area many times over.
func TestRingProducerWraps(t *testing.T) {
	Require(t)
	size := os.Getpagesize()
	m, err := NewRingBuf(size)
	require.NoError(t, err)
	defer m.Close()
	ring := mapTestRing(t, m, size)
	p, err := NewRingProducer(m, 100)
	require.NoError(t, err)
	defer p.Close()

	for batch := range 30 {
		for i := range 7 {
			require.NoError(t, p.Emit(payload(100, batch*7+i, false)))
		}
		got := ring.drain(t)
		require.Len(t, got, 7)
		for i, rec := range got {
			require.Equal(t, payload(100, batch*7+i, false), rec.data)
		}
	}
	assert.Equal(t, Stats{Written: 210}, p.Stats())
}

func TestRingProducerFull(t *testing.T) {
	Require(t)
	for _, discard := range []bool{false, true} {
		t.Run(fmt.Sprintf("discard=%v", discard), func(t *testing.T) {
			size := os.Getpagesize()
			m, err := NewRingBuf(size)
			require.NoError(t, err)
			defer m.Close()
			ring := mapTestRing(t, m, size)
			newProducer := NewRingProducer
			if discard {
				newProducer = NewRingDiscardProducer
			}
			p, err := newProducer(m, 480)
			require.NoError(t, err)
			defer p.Close()

			fits := size / RingRecordLen(480)
			for i := range fits + 3 {
				written, err := p.TryEmit(payload(480, i, false))
				require.NoError(t, err)
				require.Equal(t, i < fits, written, "emit %d of a ring that fits %d", i, fits)
			}
			assert.Equal(t, Stats{Written: uint64(fits), Dropped: 3}, p.Stats())
			require.Len(t, ring.drain(t), fits)

			written, err := p.TryEmit(payload(480, 99, false))
			require.NoError(t, err)
			require.True(t, written, "room again after draining")
			got := ring.drain(t)
			require.Len(t, got, 1)
			assert.Equal(t, payload(480, 99, false), got[0].data)
		})
	}
}

func TestRingDiscardProducer(t *testing.T) {
	Require(t)
	for _, size := range recordSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			const ringSize = 1 << 14
			m, err := NewRingBuf(ringSize)
			require.NoError(t, err)
			defer m.Close()
			ring := mapTestRing(t, m, ringSize)
			p, err := NewRingDiscardProducer(m, size)
			require.NoError(t, err)
			defer p.Close()

			var want []ringRecord
			for seq := range 6 {
				odd := seq%3 == 1
				b := payload(size+3, seq, odd)
				require.NoError(t, p.Emit(b))
				want = append(want, ringRecord{data: b[:size], discard: odd})
			}
			got := ring.drain(t)
			require.Equal(t, want, got)
			assert.Equal(t, Stats{Written: 6, Discarded: 2}, p.Stats())
		})
	}
}

func TestPerfProducer(t *testing.T) {
	Require(t)
	for _, size := range recordSizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			// Each subtest runs on a goroutine of its own: pin that one.
			cpu, unpin := pinCPU(t)
			defer unpin()
			m, err := NewPerfEventArray(0)
			require.NoError(t, err)
			defer m.Close()
			ring := openTestPerf(t, m, cpu, 4)
			p, err := NewPerfProducer(m, size)
			require.NoError(t, err)
			defer p.Close()

			var want [][]byte
			for seq := range 3 {
				b := payload(size+9, seq, seq == 2)
				require.NoError(t, p.Emit(b))
				want = append(want, b[:size])
			}
			got := ring.drain(t)
			require.Len(t, got, len(want))
			for i, rec := range got {
				assert.Equal(t, PerfRecordLen(size), int(rec.size), "record %d", i)
				require.Len(t, rec.raw, PerfRawSize(size), "raw size counts the padding")
				assert.Equal(t, want[i], rec.raw[:size], "record %d", i)
			}
			assert.Equal(t, Stats{Written: 3}, p.Stats())
		})
	}
}

func TestPerfProducerFullCountsLost(t *testing.T) {
	Require(t)
	cpu, unpin := pinCPU(t)
	defer unpin()
	m, err := NewPerfEventArray(0)
	require.NoError(t, err)
	defer m.Close()
	ring := openTestPerf(t, m, cpu, 1)
	p, err := NewPerfProducer(m, 480)
	require.NoError(t, err)
	defer p.Close()

	fits := (os.Getpagesize() - 1) / PerfRecordLen(480)
	for i := range fits + 2 {
		written, err := p.TryEmit(payload(480, i, false))
		require.NoError(t, err)
		require.Equal(t, i < fits, written, "emit %d of a ring that fits %d", i, fits)
	}
	assert.Equal(t, Stats{Written: uint64(fits), Dropped: 2}, p.Stats())
	require.Len(t, ring.drain(t), fits)

	// The kernel reports the loss ahead of the next sample that fits.
	require.NoError(t, p.Emit(payload(480, 42, false)))
	got := ring.drain(t)
	require.Len(t, got, 2)
	assert.Equal(t, uint64(2), got[0].lost)
	assert.Equal(t, payload(480, 42, false), got[1].raw[:480])
}

func TestPerfProducerErrors(t *testing.T) {
	Require(t)
	cpu, unpin := pinCPU(t)
	defer unpin()
	m, err := NewPerfEventArray(0)
	require.NoError(t, err)
	defer m.Close()
	p, err := NewPerfProducer(m, 16)
	require.NoError(t, err)
	defer p.Close()

	err = p.Emit(payload(16, 0, false))
	require.ErrorIs(t, err, unix.ENOENT, "no perf event stored for this CPU")

	// An event opened for another CPU but stored at this CPU's key.
	n, err := PossibleCPUs()
	require.NoError(t, err)
	var allowed unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &allowed))
	for other := range n {
		if other == cpu {
			continue
		}
		fd, err := OpenPerfEvent(other)
		if err != nil {
			continue // offline CPU
		}
		require.NoError(t, m.UpdateU32(uint32(cpu), uint32(fd)))
		require.NoError(t, unix.Close(fd))
		err = p.Emit(payload(16, 0, false))
		require.ErrorIs(t, err, unix.EOPNOTSUPP)
		break
	}
	assert.Equal(t, Stats{}, p.Stats())
}

func TestProducerArguments(t *testing.T) {
	Require(t)
	ring, err := NewRingBuf(os.Getpagesize())
	require.NoError(t, err)
	defer ring.Close()
	perf, err := NewPerfEventArray(0)
	require.NoError(t, err)
	defer perf.Close()
	arr, err := NewArray(1, 4)
	require.NoError(t, err)
	defer arr.Close()

	for _, size := range []int{0, -1, MaxRecordSize + 1} {
		_, err := NewRingProducer(ring, size)
		require.ErrorIs(t, err, unix.EINVAL, "size %d", size)
	}
	_, err = NewRingProducer(nil, 8)
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = NewRingProducer(perf, 8)
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = NewRingDiscardProducer(arr, 8)
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = NewPerfProducer(ring, 8)
	require.ErrorIs(t, err, unix.EINVAL)

	p, err := NewRingProducer(ring, 8)
	require.NoError(t, err)
	require.ErrorIs(t, p.Emit(make([]byte, 7)), unix.EINVAL)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Emit(make([]byte, 8)), os.ErrClosed)
	require.ErrorIs(t, p.Close(), os.ErrClosed)

	closed, err := NewRingBuf(os.Getpagesize())
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	_, err = NewRingProducer(closed, 8)
	require.ErrorIs(t, err, os.ErrClosed)
}

// TestProducerOutlivesMap: the program holds its own reference to the map.
func TestProducerOutlivesMap(t *testing.T) {
	Require(t)
	size := os.Getpagesize()
	m, err := NewRingBuf(size)
	require.NoError(t, err)
	ring := mapTestRing(t, m, size)
	p, err := NewRingProducer(m, 8)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, m.Close())
	require.NoError(t, p.Emit(payload(8, 1, false)))
	require.Len(t, ring.drain(t), 1)
}

func TestNoFDLeaks(t *testing.T) {
	Require(t)
	cpu, unpin := pinCPU(t)
	defer unpin()
	before := fdCount(t)
	func() {
		ring, err := NewRingBuf(os.Getpagesize())
		require.NoError(t, err)
		defer ring.Close()
		perf, err := NewPerfEventArray(0)
		require.NoError(t, err)
		defer perf.Close()
		fd, err := OpenPerfEvent(cpu)
		require.NoError(t, err)
		defer unix.Close(fd)
		require.NoError(t, perf.UpdateU32(uint32(cpu), uint32(fd)))
		_, err = perf.LookupU32(uint32(cpu))
		require.NoError(t, err)

		ps := make([]*Producer, 3)
		ps[0], err = NewRingProducer(ring, 8)
		require.NoError(t, err)
		ps[1], err = NewRingDiscardProducer(ring, 8)
		require.NoError(t, err)
		ps[2], err = NewPerfProducer(perf, 8)
		require.NoError(t, err)
		for _, p := range ps {
			require.NoError(t, p.Emit(payload(8, 0, false)))
			require.NoError(t, p.Close())
		}
		// A failed load (here: wrong map type) must not leak either.
		_, err = NewPerfProducer(ring, 8)
		require.Error(t, err)
	}()
	assert.Equal(t, before, fdCount(t))
}

func TestEmitDoesNotAllocate(t *testing.T) {
	Require(t)
	m, err := NewRingBuf(os.Getpagesize())
	require.NoError(t, err)
	defer m.Close()
	p, err := NewRingProducer(m, 64)
	require.NoError(t, err)
	defer p.Close()
	b := payload(64, 1, false)
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Emit(b); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	// The ring fills after a few dozen: both outcomes were exercised.
	st := p.Stats()
	assert.NotZero(t, st.Written)
	assert.NotZero(t, st.Dropped)
}

func TestProducerConcurrentEmit(t *testing.T) {
	Require(t)
	const ringSize = 1 << 16
	m, err := NewRingBuf(ringSize)
	require.NoError(t, err)
	defer m.Close()
	ring := mapTestRing(t, m, ringSize)
	p, err := NewRingProducer(m, 8)
	require.NoError(t, err)
	defer p.Close()

	const goroutines, each = 4, 50
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			var err error
			for i := 0; i < each && err == nil; i++ {
				err = p.Emit(payload(8, g*each+i, false))
			}
			errs <- err
		}()
	}
	for range goroutines {
		require.NoError(t, <-errs)
	}
	assert.Len(t, ring.drain(t), goroutines*each)
	assert.Equal(t, Stats{Written: goroutines * each}, p.Stats())
}
