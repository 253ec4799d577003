package bpftest

// Minimal test-side readers: just enough to prove the producers' records
// land in the kernel rings. The real readers live in package ringbuf.

import (
	"encoding/binary"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fdCount is the number of open descriptors of this process.
func fdCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// pinCPU locks the goroutine to its thread and the thread to one CPU, so
// that BPF_F_CURRENT_CPU means that CPU; the returned func undoes both.
func pinCPU(t *testing.T) (cpu int, unpin func()) {
	t.Helper()
	runtime.LockOSThread()
	var old unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &old))
	for cpu < 1024 && !old.IsSet(cpu) {
		cpu++
	}
	var one unix.CPUSet
	one.Set(cpu)
	require.NoError(t, unix.SchedSetaffinity(0, &one))
	return cpu, func() {
		require.NoError(t, unix.SchedSetaffinity(0, &old))
		runtime.UnlockOSThread()
	}
}

// ringRecord is one record read from a BPF ring buffer.
type ringRecord struct {
	data    []byte
	discard bool
}

// testRing maps a BPF ringbuf the way the kernel lays it out: the consumer
// page (read-write) at offset 0, then the producer page and the data area
// (read-only) at one page, the data area mapped twice in a row so that a
// record that wraps is contiguous.
type testRing struct {
	cons, prod []byte
	size       int
}

func mapTestRing(t *testing.T, m *Map, size int) *testRing {
	t.Helper()
	page := os.Getpagesize()
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	require.NoError(t, err)
	prod, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(cons)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		require.NoError(t, unix.Munmap(prod))
		require.NoError(t, unix.Munmap(cons))
	})
	return &testRing{cons: cons, prod: prod, size: size}
}

// drain returns the records between the consumer and producer positions and
// consumes them.
func (r *testRing) drain(t *testing.T) []ringRecord {
	t.Helper()
	consPos := (*uint64)(unsafe.Pointer(&r.cons[0]))
	cons := atomic.LoadUint64(consPos)
	prod := atomic.LoadUint64((*uint64)(unsafe.Pointer(&r.prod[0])))
	data := r.prod[os.Getpagesize():]
	var out []ringRecord
	for cons < prod {
		off := int(cons & uint64(r.size-1))
		require.Zero(t, off%8, "record header not 8-byte aligned")
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[off])))
		require.Zero(t, hdr&unix.BPF_RINGBUF_BUSY_BIT, "record still busy after the program returned")
		n := int(hdr &^ (unix.BPF_RINGBUF_BUSY_BIT | unix.BPF_RINGBUF_DISCARD_BIT))
		require.LessOrEqual(t, n, r.size-unix.BPF_RINGBUF_HDR_SZ)
		start := off + unix.BPF_RINGBUF_HDR_SZ
		out = append(out, ringRecord{
			data:    append([]byte(nil), data[start:start+n]...),
			discard: hdr&unix.BPF_RINGBUF_DISCARD_BIT != 0,
		})
		cons += uint64(RingRecordLen(n))
	}
	atomic.StoreUint64(consPos, cons)
	return out
}

// testPerf is one PERF_COUNT_SW_BPF_OUTPUT event with its ring mapped.
type testPerf struct {
	fd   int
	mem  []byte
	meta *unix.PerfEventMmapPage
}

// openTestPerf opens the event on cpu with dataPages (a power of two) data
// pages and stores it in m at key cpu.
func openTestPerf(t *testing.T, m *Map, cpu int, dataPages int) *testPerf {
	t.Helper()
	fd, err := OpenPerfEvent(cpu)
	require.NoError(t, err)
	mem, err := unix.Mmap(fd, 0, (1+dataPages)*os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Close(fd)
		require.NoError(t, err)
	}
	p := &testPerf{fd: fd, mem: mem, meta: (*unix.PerfEventMmapPage)(unsafe.Pointer(&mem[0]))}
	t.Cleanup(p.close)
	require.NoError(t, m.UpdateU32(uint32(cpu), uint32(fd)))
	return p
}

func (p *testPerf) close() {
	if p.fd >= 0 {
		_ = unix.Munmap(p.mem)
		_ = unix.Close(p.fd)
		p.fd = -1
	}
}

// perfRecord is one record of a perf ring: a sample's raw bytes (with the
// kernel's padding) or a PERF_RECORD_LOST count.
type perfRecord struct {
	size uint16 // perf_event_header.size
	raw  []byte // PERF_RECORD_SAMPLE
	lost uint64 // PERF_RECORD_LOST
}

// drain returns the records between data_tail and data_head and consumes
// them.
func (p *testPerf) drain(t *testing.T) []perfRecord {
	t.Helper()
	head := atomic.LoadUint64(&p.meta.Data_head)
	tail := p.meta.Data_tail
	data := p.mem[p.meta.Data_offset : p.meta.Data_offset+p.meta.Data_size]
	// at copies n bytes from ring position pos, across the wrap.
	at := func(pos uint64, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = data[(pos+uint64(i))%uint64(len(data))]
		}
		return b
	}
	var out []perfRecord
	for tail < head {
		hdr := at(tail, 8)
		typ := binary.NativeEndian.Uint32(hdr[0:])
		size := binary.NativeEndian.Uint16(hdr[6:])
		require.GreaterOrEqual(t, int(size), 8)
		require.Zero(t, size%8, "perf record size not a multiple of 8")
		require.LessOrEqual(t, uint64(size), head-tail)
		body := at(tail+8, int(size)-8)
		switch typ {
		case unix.PERF_RECORD_SAMPLE:
			n := binary.NativeEndian.Uint32(body)
			require.Equal(t, int(size), 8+4+int(n), "sample size vs raw size")
			out = append(out, perfRecord{size: size, raw: body[4 : 4+n]})
		case unix.PERF_RECORD_LOST:
			out = append(out, perfRecord{size: size, lost: binary.NativeEndian.Uint64(body[8:])}) // after the id
		default:
			t.Fatalf("unexpected perf record type %d", typ)
		}
		tail += uint64(size)
	}
	atomic.StoreUint64(&p.meta.Data_tail, tail)
	return out
}
