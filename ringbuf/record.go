package ringbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"
)

// ErrCorrupt reports a ring whose positions or record headers cannot be
// trusted: a head behind the tail, a size that is not a multiple of 8 or
// exceeds what was published, a record larger than the ring. The reader drops
// everything published so far on that ring (it resynchronises the consumer
// position to the producer's) and returns an error wrapping ErrCorrupt.
var ErrCorrupt = errors.New("ringbuf: corrupt ring")

// Perf ring ABI, from include/uapi/linux/perf_event.h. The offsets are those
// of struct perf_event_mmap_page; the first page of every perf mapping has
// this layout and the kernel fills in data_offset/data_size since Linux 4.1.
const (
	perfOffDataHead   = 1024
	perfOffDataTail   = 1032
	perfOffDataOffset = 1040
	perfOffDataSize   = 1048
	perfMetaMin       = perfOffDataSize + 8

	perfHeaderSize = 8 // struct perf_event_header: u32 type, u16 misc, u16 size

	perfRecordLost   = 2 // PERF_RECORD_LOST: header, u64 id, u64 lost
	perfRecordSample = 9 // PERF_RECORD_SAMPLE: header, then (PERF_SAMPLE_RAW) u32 size, data

	perfLostSize  = perfHeaderSize + 16
	perfSampleMin = perfHeaderSize + 4

	// perfMaxRecord bounds a record by its u16 size field, which is also the
	// most a wrapped record can need in the scratch buffer.
	perfMaxRecord = 1<<16 - 1
)

// BPF ringbuf ABI, from include/uapi/linux/bpf.h and kernel/bpf/ringbuf.c:
// every record starts with an 8-byte header (u32 len with the BUSY and
// DISCARD flags in its top bits, u32 page offset) and is padded to 8 bytes.
const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHeaderSize = 8
)

// corruptf builds the error a reader returns after resynchronising a ring.
func corruptf(format string, args ...any) error {
	return &corruptError{cpu: -1, detail: fmt.Sprintf(format, args...)}
}

// u64At returns a pointer to the 8-byte word at mem[off:], for atomic access
// to a position shared with the producer. The caller has checked the bounds
// and that mem is 8-byte aligned.
func u64At(mem []byte, off int) *uint64 {
	return (*uint64)(unsafe.Pointer(&mem[off]))
}

// u32At is u64At for the 4-byte ringbuf record header word.
func u32At(mem []byte, off uint64) *uint32 {
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// aligned8 reports whether b starts on an 8-byte boundary, which atomics on
// the positions and record headers inside it need.
func aligned8(b []byte) bool {
	return len(b) > 0 && uintptr(unsafe.Pointer(&b[0]))%8 == 0
}

// isPow2 reports whether n is a positive power of two.
func isPow2(n uint64) bool { return n != 0 && n&(n-1) == 0 }

// perfHeader is a decoded struct perf_event_header.
type perfHeader struct {
	typ  uint32
	size uint64
}

// readPerfHeader decodes the header at the start of b, which has at least
// perfHeaderSize bytes. Perf rings are written in host byte order.
func readPerfHeader(b []byte) perfHeader {
	return perfHeader{
		typ:  binary.NativeEndian.Uint32(b[0:4]),
		size: uint64(binary.NativeEndian.Uint16(b[6:8])),
	}
}

// perfRecordOK is the drain's check of a record header against the bytes
// published after it (avail is head-tail, a non-zero multiple of 8): at
// least a header, a multiple of 8, at most avail. One comparison does the
// first and the last, since size-8 wraps around for a size below 8. It is
// small enough to be inlined; checkPerfRecord says what is wrong.
func perfRecordOK(h perfHeader, avail uint64) bool {
	return h.size-perfHeaderSize <= avail-perfHeaderSize && h.size%8 == 0
}

// checkPerfRecord validates a record header against the bytes published
// after it; avail is head-tail, a multiple of 8.
func checkPerfRecord(h perfHeader, avail uint64) error {
	switch {
	case h.size < perfHeaderSize:
		return corruptf("perf record size %d smaller than its header", h.size)
	case h.size%8 != 0:
		return corruptf("perf record size %d not a multiple of 8", h.size)
	case h.size > avail:
		return corruptf("perf record size %d exceeds the %d bytes published", h.size, avail)
	}
	return nil
}

// rawSample returns the PERF_SAMPLE_RAW payload of a sample record rec
// (header included): exactly the length the kernel wrote in the u32 size
// field, which must fit inside the record. It reports false for a record
// that does not hold one (rawSampleError says why); it is small enough to
// be inlined in the drain loop.
func rawSample(rec []byte) ([]byte, bool) {
	if len(rec) < perfSampleMin {
		return nil, false
	}
	n := uint64(binary.NativeEndian.Uint32(rec[perfHeaderSize:perfSampleMin]))
	if n > uint64(len(rec)-perfSampleMin) {
		return nil, false
	}
	end := perfSampleMin + int(n)
	return rec[perfSampleMin:end:end], true
}

// rawSampleError describes why rawSample refused rec.
func rawSampleError(rec []byte) error {
	if len(rec) < perfSampleMin {
		return corruptf("perf sample of %d bytes has no raw size", len(rec))
	}
	n := binary.NativeEndian.Uint32(rec[perfHeaderSize:perfSampleMin])
	return corruptf("perf raw size %d exceeds its %d-byte record", n, len(rec))
}

// lostCount returns the count of a PERF_RECORD_LOST record rec.
func lostCount(rec []byte) (uint64, error) {
	if len(rec) < perfLostSize {
		return 0, corruptf("perf lost record of %d bytes", len(rec))
	}
	return binary.NativeEndian.Uint64(rec[perfHeaderSize+8 : perfLostSize]), nil
}

// ringRecordSize returns the length of a ringbuf record's payload and the
// space the record occupies (header and padding included) from its header
// word.
func ringRecordSize(hdr uint32) (n, total uint64) {
	n = uint64(hdr &^ (ringBusyBit | ringDiscardBit))
	return n, (n + ringHeaderSize + 7) &^ 7
}

// loadAcquire reads a position the producer publishes. Go's atomics are
// sequentially consistent, which is at least the acquire the ABI asks for.
func loadAcquire(p *uint64) uint64 { return atomic.LoadUint64(p) }

// storeRelease publishes a consumer position after the records before it
// have been read.
//
// For a BPF ring buffer it must be more than a release, or a wakeup can be
// lost (libbpf's 2023 "fix ringbuf synchronization" patch). The kernel's
// bpf_ringbuf_commit clears the record's BUSY bit with xchg (a full
// barrier), then loads consumer_pos and wakes the reader only if it equals
// the record's position, that is only if the reader has caught up. The
// reader stores consumer_pos and then, when it next checks readiness,
// loads producer_pos (ringbuf_map_poll, inside the epoll the reader waits
// in). That is Dekker's pattern: with a plain release store, the store can
// be ordered after the load, the reader can see no new record while the
// producer sees the old consumer_pos, and nobody wakes the reader. Go's
// atomic store is sequentially consistent (XCHG on amd64, STLR on arm64,
// which the kernel's LDAR-based acquire loads cannot pass), so at least one
// side sees the other's write: either the producer sees that the reader
// caught up and wakes it, or the reader's next check sees the record. The
// reader also waits on the map level-triggered, so every wait and every
// check of Fd re-reads both positions in the kernel instead of relying on
// the edge of an earlier wakeup. TestRingReaderNoLostWakeup exercises it
// (and fails within seconds if the map is watched edge-triggered).
// Perf rings need neither: the kernel wakes a perf reader by record or byte
// counts, never by comparing against data_tail.
func storeRelease(p *uint64, v uint64) { atomic.StoreUint64(p, v) }
