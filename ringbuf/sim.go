//go:build linux

package ringbuf

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PerfSim is a set of per-CPU perf rings in ordinary memory together with
// the kernel's side of the protocol: it writes PERF_RECORD_SAMPLE (with or
// without PERF_SAMPLE_TIME) and PERF_RECORD_LOST records laid out byte for
// byte as the kernel lays them out, wrapping at the ring's end, and
// publishes them by moving the ring's head. Its rings are read by the same
// code as a PerfReader's rings (Consume, Peek, Advance), so a program's
// handlers can be tested without BPF, perf events or privileges.
//
// A PerfSim has no descriptor to watch: whoever writes to it knows when
// there is something to read (Pending also says so). It is not safe for
// concurrent use; Stats may be called from any goroutine.
type PerfSim struct {
	g     guard
	ps    peekSession
	rings []*perfRing
	cpus  []int
	stats perfCounters
}

// NewPerfSim builds one ring of pagesPerCPU pages (a power of two; 0 means
// DefaultPagesPerCPU) per CPU 0..cpus-1. With timestamps, samples carry a
// time word as those of a PerfReader opened with PerfOptions.Timestamps.
func NewPerfSim(cpus, pagesPerCPU int, timestamps bool) (*PerfSim, error) {
	if pagesPerCPU == 0 {
		pagesPerCPU = DefaultPagesPerCPU
	}
	if cpus <= 0 || cpus > 1<<16 || pagesPerCPU < 0 || !isPow2(uint64(pagesPerCPU)) {
		return nil, fmt.Errorf("ringbuf: simulated perf rings: %d CPUs of %d pages: %w", cpus, pagesPerCPU, unix.EINVAL)
	}
	pageSize := os.Getpagesize()
	s := &PerfSim{}
	for cpu := range cpus {
		meta := alignedMem(pageSize)
		data := alignedMem(pagesPerCPU * pageSize)
		// What the kernel fills in at mmap time.
		*u64At(meta, perfOffDataOffset) = uint64(pageSize)
		*u64At(meta, perfOffDataSize) = uint64(len(data))
		ring, err := newPerfRing(cpu, meta, data)
		if err != nil {
			return nil, err
		}
		ring.timed = timestamps
		s.rings = append(s.rings, ring)
		s.cpus = append(s.cpus, cpu)
	}
	return s, nil
}

// alignedMem returns n zeroed bytes on an 8-byte boundary, as a mapping is.
func alignedMem(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)[:n:n]
}

// Rings returns the number of rings; ring i is on CPU i.
func (s *PerfSim) Rings() int { return len(s.rings) }

// CPUs returns the CPU of each ring, in ring order.
func (s *PerfSim) CPUs() []int { return append([]int(nil), s.cpus...) }

// ring returns the ring of cpu for a write.
func (s *PerfSim) ring(cpu int, what string) (*perfRing, error) {
	if s.g.closed() {
		return nil, fmt.Errorf("ringbuf: simulated %s: %w", what, os.ErrClosed)
	}
	if cpu < 0 || cpu >= len(s.rings) {
		return nil, fmt.Errorf("ringbuf: simulated %s on CPU %d of %d: %w", what, cpu, len(s.rings), unix.EINVAL)
	}
	return s.rings[cpu], nil
}

// room reports whether size more bytes fit in the ring. The kernel keeps
// one byte free (CIRC_SPACE), so that a full ring and an empty one differ.
func room(r *perfRing, size uint64) bool {
	used := loadAcquire(r.head) - loadAcquire(r.tail)
	return used <= r.mask && r.mask-used >= size
}

// put writes b at position pos of the ring, wrapping at its end, and
// returns the position after it.
func put(r *perfRing, pos uint64, b []byte) uint64 {
	off := pos & r.mask
	n := copy(r.data[off:], b)
	copy(r.data, b[n:])
	return pos + uint64(len(b))
}

// Sample writes a PERF_RECORD_SAMPLE on cpu whose raw data is head followed
// by body, as bpf_perf_event_output does: the raw size field counts the
// padding that ends the record on 8 bytes, and the padding bytes are not
// written (they hold whatever the ring held before). time is written only
// by a sim built with timestamps. A record that does not fit is refused
// with an error wrapping unix.EAGAIN (the kernel would count it lost; call
// Lost to say so); one larger than a perf record can be, with unix.E2BIG.
func (s *PerfSim) Sample(cpu int, time uint64, head, body []byte) error {
	r, err := s.ring(cpu, "sample")
	if err != nil {
		return err
	}
	n := len(head) + len(body)
	rawSize := (n+4+7)&^7 - 4
	fixed := perfSampleMin
	if r.timed {
		fixed += perfTimeSize
	}
	size := fixed + rawSize
	if size > perfMaxRecord || size > len(r.data) {
		return fmt.Errorf("ringbuf: simulated sample of %d bytes: %w", n, unix.E2BIG)
	}
	if !room(r, uint64(size)) {
		return fmt.Errorf("ringbuf: simulated sample on CPU %d: ring full: %w", cpu, unix.EAGAIN)
	}
	var hdr [perfSampleMin + perfTimeSize]byte
	binary.NativeEndian.PutUint32(hdr[0:], perfRecordSample)
	binary.NativeEndian.PutUint16(hdr[6:], uint16(size))
	at := perfHeaderSize
	if r.timed {
		binary.NativeEndian.PutUint64(hdr[at:], time)
		at += perfTimeSize
	}
	binary.NativeEndian.PutUint32(hdr[at:], uint32(rawSize))
	pos := loadAcquire(r.head)
	end := pos + uint64(size)
	pos = put(r, pos, hdr[:fixed])
	pos = put(r, pos, head)
	put(r, pos, body)
	storeRelease(r.head, end)
	return nil
}

// Lost writes a PERF_RECORD_LOST on cpu reporting n lost records, as the
// kernel does once a full ring has room again. It fails with an error
// wrapping unix.EAGAIN when even that record does not fit.
func (s *PerfSim) Lost(cpu int, n uint64) error {
	r, err := s.ring(cpu, "lost record")
	if err != nil {
		return err
	}
	if !room(r, perfLostSize) {
		return fmt.Errorf("ringbuf: simulated lost record on CPU %d: ring full: %w", cpu, unix.EAGAIN)
	}
	var rec [perfLostSize]byte
	binary.NativeEndian.PutUint32(rec[0:], perfRecordLost)
	binary.NativeEndian.PutUint16(rec[6:], perfLostSize)
	binary.NativeEndian.PutUint64(rec[perfHeaderSize:], uint64(cpu)) // the event's id
	binary.NativeEndian.PutUint64(rec[perfHeaderSize+8:], n)
	pos := loadAcquire(r.head)
	storeRelease(r.head, put(r, pos, rec[:]))
	return nil
}

// Corrupt publishes, on cpu, a record header whose size is not a multiple
// of 8, which no kernel writes: what a reader finds in a ring that something
// scribbled on. The reader drops the ring's contents and reports an error
// wrapping ErrCorrupt.
func (s *PerfSim) Corrupt(cpu int) error {
	r, err := s.ring(cpu, "corrupt record")
	if err != nil {
		return err
	}
	if !room(r, 16) {
		return fmt.Errorf("ringbuf: simulated corrupt record on CPU %d: ring full: %w", cpu, unix.EAGAIN)
	}
	var rec [16]byte
	binary.NativeEndian.PutUint32(rec[0:], perfRecordSample)
	binary.NativeEndian.PutUint16(rec[6:], 13)
	pos := loadAcquire(r.head)
	storeRelease(r.head, put(r, pos, rec[:]))
	return nil
}

// Consume drains every ring as PerfReader.Consume does.
func (s *PerfSim) Consume(h Handler) (total int, err error) {
	if err := s.g.enter("consume"); err != nil {
		return 0, err
	}
	defer func() { err = s.g.leave(err, s) }()
	for _, ring := range s.rings {
		n, rerr := ring.consume(&h, &s.stats, &s.g)
		total += n
		if rerr != nil && err == nil {
			err = fmt.Errorf("ringbuf: CPU %d: %w", ring.cpu, rerr)
		}
	}
	return total, err
}

// Peek is PerfReader.Peek.
func (s *PerfSim) Peek(i int, lost func(cpu int, count uint64)) (PerfSample, bool, error) {
	if s.ps.open {
		return peekRing(s.rings, i, lost, &s.stats, &s.g, true)
	}
	return s.peekClaimed(i, lost)
}

func (s *PerfSim) peekClaimed(i int, lost func(cpu int, count uint64)) (ps PerfSample, ok bool, err error) {
	if err := s.g.enter("peek"); err != nil {
		return PerfSample{}, false, err
	}
	defer func() { err = s.g.leave(err, s) }()
	return peekRing(s.rings, i, lost, &s.stats, &s.g, false)
}

// Next is PerfReader.Next.
func (s *PerfSim) Next(i int, lost func(cpu int, count uint64), ps *PerfSample) (ok bool, err error) {
	if s.ps.open {
		return s.ps.next(s.rings, i, lost, &s.stats, &s.g, ps)
	}
	if _, err := s.advanceClaimed(i); err != nil {
		return false, err
	}
	head, ok, err := s.peekClaimed(i, lost)
	if ok {
		*ps = head
	}
	return ok, err
}

// ConsumeUntil is PerfReader.ConsumeUntil.
func (s *PerfSim) ConsumeUntil(i int, until uint64, h Handler, head *PerfSample) (n int, ok bool, err error) {
	if s.ps.open {
		if uint(i) >= uint(len(s.rings)) {
			return 0, false, errNoRing
		}
		return s.rings[i].run(until, false, &h, &s.stats, &s.g, &s.ps.samples, head)
	}
	return s.consumeUntilClaimed(i, until, &h, head)
}

func (s *PerfSim) consumeUntilClaimed(i int, until uint64, h *Handler, head *PerfSample) (n int, ok bool, err error) {
	if err := s.g.enter("consume until"); err != nil {
		return 0, false, err
	}
	defer func() { err = s.g.leave(err, s) }()
	return runRingOnce(s.rings, i, until, h, &s.stats, &s.g, head)
}

// Advance is PerfReader.Advance.
func (s *PerfSim) Advance(i int) (bool, error) {
	if s.ps.open {
		return s.ps.advance(s.rings, i, &s.stats)
	}
	return s.advanceClaimed(i)
}

func (s *PerfSim) advanceClaimed(i int) (advanced bool, err error) {
	if err := s.g.enter("advance"); err != nil {
		return false, err
	}
	defer func() { err = s.g.leave(err, s) }()
	return s.ps.advance(s.rings, i, &s.stats)
}

// Begin is PerfReader.Begin.
func (s *PerfSim) Begin() error { return s.ps.begin(&s.g, s.rings) }

// End is PerfReader.End.
func (s *PerfSim) End() error {
	if err := s.ps.end(&s.stats, s.rings); err != nil {
		return err
	}
	return s.g.leave(nil, s)
}

// Pending reports whether any ring holds a record not consumed yet.
func (s *PerfSim) Pending() bool {
	if s.g.closed() {
		return false
	}
	return ringsPending(s.rings)
}

// Stats returns the counters of what was read, as PerfReader.Stats.
func (s *PerfSim) Stats() PerfStats {
	return s.stats.load()
}

// Close makes every later call fail with an error wrapping os.ErrClosed.
// A second Close returns such an error.
func (s *PerfSim) Close() error {
	if _, err := s.g.close(); err != nil {
		return err
	}
	if s.g.exitShared() {
		return s.release()
	}
	return nil
}

// release drops the rings; the memory is the garbage collector's.
func (s *PerfSim) release() error {
	s.rings = nil
	return nil
}
