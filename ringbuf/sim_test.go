package ringbuf

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"unsafe"
)

// Simulated rings: the kernel's layouts, in ordinary Go memory, written by a
// test producer that follows the kernel's protocol (or, for the fuzzers and
// corruption tests, deliberately breaks it). The readers' ring types read
// them exactly as they read the kernel's mappings.

// alignedBytes returns n zeroed bytes starting on an 8-byte boundary.
func alignedBytes(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)[:n:n]
}

const simPageSize = 4096

// simPerf is a perf ring and the producer side of the kernel's protocol.
type simPerf struct {
	t    testing.TB
	meta []byte
	data []byte
	ring *perfRing
	size uint64
	head uint64 // producer's head, published by publish
	lost uint64 // records dropped since the last PERF_RECORD_LOST
	c    perfCounters
	g    guard
}

// newSimPerf builds a perf ring with a data area of size bytes whose head
// and tail both start at start (so a test can place the first record at any
// offset).
func newSimPerf(t testing.TB, size int, start uint64) *simPerf {
	t.Helper()
	s := &simPerf{t: t, meta: alignedBytes(simPageSize), data: alignedBytes(size), size: uint64(size), head: start}
	*u64At(s.meta, perfOffDataOffset) = simPageSize
	*u64At(s.meta, perfOffDataSize) = uint64(size)
	*u64At(s.meta, perfOffDataHead) = start
	*u64At(s.meta, perfOffDataTail) = start
	ring, err := newPerfRing(7, s.meta, s.data)
	if err != nil {
		t.Fatalf("newPerfRing: %v", err)
	}
	s.ring = ring
	return s
}

func (s *simPerf) tail() uint64          { return atomic.LoadUint64(s.ring.tail) }
func (s *simPerf) publishedHead() uint64 { return atomic.LoadUint64(s.ring.head) }
func (s *simPerf) free() uint64          { return s.size - (s.head - s.tail()) }

// publish makes everything written so far visible to the reader.
func (s *simPerf) publish() { atomic.StoreUint64(s.ring.head, s.head) }

// put writes b at the producer's head, wrapping at the end of the ring.
func (s *simPerf) put(b []byte) {
	for i, c := range b {
		s.data[(s.head+uint64(i))&(s.size-1)] = c
	}
	s.head += uint64(len(b))
}

// rawRecord writes a record of the given type and total size whose body is
// body, padded with 0xEE; it does not check for space.
func (s *simPerf) rawRecord(typ uint32, size int, body []byte) {
	rec := make([]byte, size)
	binary.NativeEndian.PutUint32(rec[0:], typ)
	binary.NativeEndian.PutUint16(rec[6:], uint16(size))
	n := copy(rec[perfHeaderSize:], body)
	for i := perfHeaderSize + n; i < size; i++ {
		rec[i] = 0xEE
	}
	s.put(rec)
}

func sampleRecordSize(n int) int { return (perfSampleMin + n + 7) &^ 7 }

// sample writes a PERF_RECORD_SAMPLE carrying payload the way the kernel
// does when the ring has room, preceded by a PERF_RECORD_LOST if records
// were dropped since the last one; otherwise it counts the record lost. The
// raw size field holds len(payload) exactly; the padding after it is 0xEE.
func (s *simPerf) sample(payload []byte) bool {
	need := uint64(sampleRecordSize(len(payload)))
	if s.lost > 0 {
		need += perfLostSize
	}
	if need > s.free() {
		s.lost++
		return false
	}
	if s.lost > 0 {
		var body [16]byte
		binary.NativeEndian.PutUint64(body[0:], 42) // id
		binary.NativeEndian.PutUint64(body[8:], s.lost)
		s.rawRecord(perfRecordLost, perfLostSize, body[:])
		s.lost = 0
	}
	body := make([]byte, 4+len(payload))
	binary.NativeEndian.PutUint32(body, uint32(len(payload)))
	copy(body[4:], payload)
	s.rawRecord(perfRecordSample, sampleRecordSize(len(payload)), body)
	return true
}

// consume drains the ring the way PerfReader.Consume does.
func (s *simPerf) consume(h Handler) (int, error) {
	return s.ring.consume(&h, &s.c, &s.g)
}

// simRing is a BPF ring buffer: consumer page, producer page and a data area
// of twice the ring's size whose halves the producer keeps identical, as the
// kernel's double mapping does.
type simRing struct {
	t    testing.TB
	cons []byte
	prod []byte
	data []byte
	ring *bpfRing
	size uint64
	pos  uint64 // producer_pos, published on every reserve as the kernel does
	c    ringCounters
	g    guard
}

func newSimRing(t testing.TB, size int, start uint64) *simRing {
	t.Helper()
	s := &simRing{t: t, cons: alignedBytes(simPageSize), prod: alignedBytes(simPageSize), data: alignedBytes(2 * size), size: uint64(size), pos: start}
	*u64At(s.cons, 0) = start
	*u64At(s.prod, 0) = start
	ring, err := newBPFRing(s.cons, s.prod, s.data)
	if err != nil {
		t.Fatalf("newBPFRing: %v", err)
	}
	s.ring = ring
	return s
}

func (s *simRing) consPos() uint64 { return atomic.LoadUint64(s.ring.cons) }

// setByte writes one byte of the ring at absolute position p, in both
// halves of the double mapping.
func (s *simRing) setByte(p uint64, c byte) {
	off := p & (s.size - 1)
	s.data[off] = c
	s.data[off+s.size] = c
}

// setHeader publishes a record header word at absolute position p.
func (s *simRing) setHeader(p uint64, w uint32) {
	off := p & (s.size - 1)
	atomic.StoreUint32(u32At(s.data, off+s.size), w)
	atomic.StoreUint32(u32At(s.data, off), w)
}

// reserve claims room for n payload bytes the way bpf_ringbuf_reserve does:
// a BUSY header, then producer_pos moves past the padded record. It returns
// the record's position, or false when the ring lacks room.
func (s *simRing) reserve(n int) (uint64, bool) {
	_, total := ringRecordSize(uint32(n))
	if s.pos+total-s.consPos() > s.size {
		return 0, false
	}
	p := s.pos
	s.setHeader(p, ringBusyBit|uint32(n))
	s.pos += total
	atomic.StoreUint64(s.ring.prod, s.pos)
	return p, true
}

// fill writes payload into the record reserved at p.
func (s *simRing) fill(p uint64, payload []byte) {
	for i, c := range payload {
		s.setByte(p+ringHeaderSize+uint64(i), c)
	}
}

// commit ends a reservation of n bytes at p, as submit or discard.
func (s *simRing) commit(p uint64, n int, discard bool) {
	w := uint32(n)
	if discard {
		w |= ringDiscardBit
	}
	s.setHeader(p, w)
}

// output is bpf_ringbuf_output: reserve, copy, submit.
func (s *simRing) output(payload []byte) bool {
	p, ok := s.reserve(len(payload))
	if !ok {
		return false
	}
	s.fill(p, payload)
	s.commit(p, len(payload), false)
	return true
}

func (s *simRing) consume(fn func([]byte)) (int, error) {
	return s.ring.consume(fn, &s.c, &s.g)
}

// begin starts a batch of the ring, as RingReader.Begin does (without the
// reader's claim, which its End then does not release).
func (s *simRing) begin() *RingBatch {
	b := new(RingBatch)
	s.ring.begin(b, &s.c, &s.g)
	return b
}
