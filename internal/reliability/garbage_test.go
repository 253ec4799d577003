package reliability

import (
	"encoding/binary"
	"os"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// perfEventFDs lists this process's perf event descriptors, lowest first.
func perfEventFDs(t *testing.T) []int {
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var fds []int
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "anon_inode:[perf_event]" {
			fd, err := strconv.Atoi(e.Name())
			require.NoError(t, err)
			fds = append(fds, fd)
		}
	}
	sort.Ints(fds)
	return fds
}

// word64 is the 8-byte word at b[off:], for atomic access to a position
// shared with the kernel.
func word64(b []byte, off int) *uint64 { return (*uint64)(unsafe.Pointer(&b[off])) }

// Garbage in the positions of a real perf ring, written through a second
// mapping of the reader's own perf event. Only the first page (data_head,
// data_tail) is writable to user space; the kernel maps the data pages
// read-only, so garbage record headers are covered by the simulated-ring
// tests and fuzz targets in ringbuf instead. A consumer position ahead of
// the producer, misaligned, or more than a ring behind, and a producer
// position misaligned, behind the consumer or beyond the ring: each time
// Consume returns an error wrapping ringbuf.ErrCorrupt (never a panic or an
// out-of-bounds read), counts a resync, and records the kernel writes after
// it arrive intact.
func TestGarbagePerfRingPositions(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	m, err := bpftest.NewPerfEventArray(0)
	require.NoError(t, err)
	defer m.Close()
	prod, err := bpftest.NewPerfProducer(m, 16)
	require.NoError(t, err)
	defer prod.Close()

	before := perfEventFDs(t)
	cpu := 0
	{
		var set unix.CPUSet
		require.NoError(t, unix.SchedGetaffinity(0, &set))
		for !set.IsSet(cpu) {
			cpu++
		}
	}
	r, err := ringbuf.NewPerfReader(m.FD(), ringbuf.PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}})
	require.NoError(t, err)
	defer r.Close()
	fds := setMinus(perfEventFDs(t), before)
	require.Len(t, fds, 1, "the reader's perf event")

	page := os.Getpagesize()
	meta, err := unix.Mmap(fds[0], 0, 2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(meta)
	headPtr, tailPtr := word64(meta, 1024), word64(meta, 1032)
	size := uint64(page)

	seq := uint32(0)
	emit := func() {
		onCPU(t, cpu, func() {
			buf := make([]byte, 16)
			binary.LittleEndian.PutUint32(buf, seq)
			seq++
			require.NoError(t, prod.Emit(buf))
		})
	}
	var got []uint32
	h := ringbuf.Handler{Sample: func(_ int, data []byte) {
		if len(data) != bpftest.PerfRawSize(16) {
			t.Errorf("%d-byte record", len(data))
			return
		}
		got = append(got, binary.LittleEndian.Uint32(data))
	}}

	resyncs := uint64(0)
	for _, c := range []struct {
		name  string
		spoil func(head, tail uint64)
	}{
		{"consumer ahead of the producer", func(h, _ uint64) { atomic.StoreUint64(tailPtr, h+8) }},
		{"consumer misaligned", func(h, _ uint64) { atomic.StoreUint64(tailPtr, h-3) }},
		{"consumer more than a ring behind", func(h, _ uint64) { atomic.StoreUint64(tailPtr, h-2*size) }},
		{"producer misaligned", func(_, t uint64) { atomic.StoreUint64(headPtr, t+13) }},
		{"producer behind the consumer", func(_, t uint64) { atomic.StoreUint64(headPtr, t-8) }},
		{"producer beyond the ring", func(_, t uint64) { atomic.StoreUint64(headPtr, t+4*size) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			emit()
			c.spoil(atomic.LoadUint64(headPtr), atomic.LoadUint64(tailPtr))
			var err error
			require.NotPanics(t, func() { _, err = r.Consume(h) })
			require.ErrorIs(t, err, ringbuf.ErrCorrupt)
			resyncs++
			require.Equal(t, resyncs, r.Stats().Resyncs)

			// A spoilt producer position is the kernel's to overwrite: its
			// next record puts the real one back, which the reader may
			// find inconsistent with the garbage it resynchronised to
			// once more. After that, records arrive intact.
			got = got[:0]
			for round := 0; len(got) == 0 && round < 3; round++ {
				emit()
				var err error
				require.NotPanics(t, func() { _, err = r.Consume(h) })
				if err != nil {
					require.ErrorIs(t, err, ringbuf.ErrCorrupt)
					resyncs++
				}
			}
			got = got[:0]
			emit()
			n, err := r.Consume(h)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Equal(t, []uint32{seq - 1}, got, "the next record arrives intact")
		})
	}
}

// Garbage in the consumer position of a real BPF ring buffer, written
// through a second mapping of the map's consumer page (the only part of a
// BPF ring buffer user space can write; record headers are read-only to it
// and are covered by the simulated-ring tests and fuzz targets in ringbuf):
// Consume reports ErrCorrupt, resynchronises to the producer, and the next
// record the kernel writes arrives intact.
func TestGarbageRingBufConsumerPosition(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	const size = 1 << 14
	m, err := bpftest.NewRingBuf(size)
	require.NoError(t, err)
	defer m.Close()
	prod, err := bpftest.NewRingProducer(m, 16)
	require.NoError(t, err)
	defer prod.Close()
	r, err := ringbuf.NewRingReader(m.FD())
	require.NoError(t, err)
	defer r.Close()

	page := os.Getpagesize()
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(cons)
	prodPage, err := unix.Mmap(m.FD(), int64(page), page, unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(prodPage)
	consPtr := word64(cons, 0)
	producer := func() uint64 { return atomic.LoadUint64(word64(prodPage, 0)) }

	seq := uint32(0)
	emit := func() {
		buf := make([]byte, 16)
		binary.LittleEndian.PutUint32(buf, seq)
		seq++
		require.NoError(t, prod.Emit(buf))
	}
	var got []uint32
	fn := func(data []byte) {
		if len(data) != 16 {
			t.Errorf("%d-byte record", len(data))
			return
		}
		got = append(got, binary.LittleEndian.Uint32(data))
	}
	resyncs := uint64(0)
	for _, c := range []struct {
		name string
		cons func(prod uint64) uint64
	}{
		{"ahead of the producer", func(p uint64) uint64 { return p + 8 }},
		{"misaligned", func(p uint64) uint64 { return p - 3 }},
		{"more than a ring behind", func(p uint64) uint64 { return p - 2*size }},
		{"half the position space away", func(p uint64) uint64 { return p + 1<<63 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			emit()
			atomic.StoreUint64(consPtr, c.cons(producer()))
			var err error
			require.NotPanics(t, func() { _, err = r.Consume(fn) })
			require.ErrorIs(t, err, ringbuf.ErrCorrupt)
			resyncs++
			require.Equal(t, resyncs, r.Stats().Resyncs)
			require.Equal(t, producer(), atomic.LoadUint64(consPtr), "resynchronised to the producer")
			got = got[:0]
			emit()
			n, err := r.Consume(fn)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Equal(t, []uint32{seq - 1}, got, "the next record arrives intact")
		})
	}
}
