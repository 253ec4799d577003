//go:build linux

package ringbuf

import (
	"encoding/binary"
	"math"
)

// perfTimeSize is the PERF_SAMPLE_TIME word. In a sample record the kernel
// writes the sample_type fields in a fixed order (ip, tid, time, addr, id,
// stream_id, cpu, period, read, callchain, raw); with only TIME and RAW
// selected the record is header, u64 time, u32 raw size, raw data.
const perfTimeSize = 8

// openTimedEvent is openBPFOutput with PERF_SAMPLE_TIME added and the
// event's clock set to CLOCK_MONOTONIC (use_clockid), so that sample times
// compare with unix.ClockGettime(unix.CLOCK_MONOTONIC) and with the times of
// the other CPUs' events. Without use_clockid the kernel stamps records with
// perf's local clock, which is neither.
func openTimedEvent(cpu int, wakeup uint32, watermark bool) (int, error) {
	return openOutputEvent(cpu, wakeup, watermark, true)
}

// sample parses a PERF_RECORD_SAMPLE rec (header included) of this ring:
// its time (0 for a ring without PERF_SAMPLE_TIME) and its raw data. It
// reports false for a record that does not hold them (sampleError says
// why). A timed sample's raw part starts perfTimeSize bytes later than an
// untimed one's; otherwise the bounds checks are rawSample's. Small enough
// to be inlined in the drain loops (go build -gcflags=-m says so).
func (r *perfRing) sample(rec []byte) (uint64, []byte, bool) {
	// k is where the raw data starts, after its u32 size.
	k := uint64(perfSampleMin)
	if r.timed {
		k += perfTimeSize
	}
	if uint64(len(rec)) < k {
		return 0, nil, false
	}
	n := uint64(binary.NativeEndian.Uint32(rec[k-4 : k]))
	if n > uint64(len(rec))-k {
		return 0, nil, false
	}
	at := uint64(0)
	if r.timed {
		at = binary.NativeEndian.Uint64(rec[perfHeaderSize : perfHeaderSize+perfTimeSize])
	}
	return at, rec[k : k+n : k+n], true
}

// sampleError describes why sample refused rec.
func (r *perfRing) sampleError(rec []byte) error {
	if !r.timed {
		return rawSampleError(rec)
	}
	if len(rec) < perfSampleMin+perfTimeSize {
		return corruptf("perf sample of %d bytes has no time and raw size", len(rec))
	}
	return rawSampleError(rec[perfTimeSize:])
}

// knownSample is a sample layout a ring has checked: the record's whole
// header word (type, misc and size) and its raw size word. Every record
// with those two words is a well-formed sample, wherever it lies, since
// what makes it one (type, a size that is a multiple of 8 and holds the
// time and raw words, a raw size that fits) is in them. BPF programs
// write records of a few sizes, so a drain mostly finds the layout it saw
// last and skips the checks; where the record lies (published, not
// wrapping the ring's end) is still checked each time, and every read is
// bounds-checked as always.
type knownSample struct {
	hdr  uint64 // the header word, in the ring's byte order
	size uint64 // its size field
	k    uint64 // where the raw data starts: after the time word too when timed
	end  uint64 // where it ends: k plus the raw size
	raw  uint32 // the raw size word, at k-4
	time uint64 // mask of the word after the header: all ones when it is the time
}

// noKnownSample matches no record: its size is larger than any published
// span, which the fast path compares first.
var noKnownSample = knownSample{size: math.MaxUint64}

// fastSample is sample for a record at off, with avail bytes published
// from it, whose layout is the ring's known one: its raw data and its
// size (knownTime gives its time). ok false means the caller does the full
// checks (see knownSample). Small enough to be inlined in the drain loops.
func (r *perfRing) fastSample(off, avail uint64) (raw []byte, size uint64, ok bool) {
	f, d := &r.known, r.data
	if f.size > avail || off+f.size > uint64(len(d)) ||
		binary.NativeEndian.Uint64(d[off:]) != f.hdr || binary.NativeEndian.Uint32(d[off+f.k-4:]) != f.raw {
		return nil, 0, false
	}
	end := off + f.end
	return d[off+f.k : end : end], f.size, true
}

// knownTime is the time of the sample fastSample accepted at off. Every
// sample has at least 16 bytes, so the word after the header is there to
// read (and mask) whether or not it is a time.
func (r *perfRing) knownTime(off uint64) uint64 {
	return binary.NativeEndian.Uint64(r.data[off+perfHeaderSize:]) & r.known.time
}

// learn makes the layout of the well-formed sample at off (raw being what
// sample returned for it, of a record of size bytes) the ring's known one.
func (r *perfRing) learn(off, size uint64, raw []byte) {
	f := knownSample{
		hdr:  binary.NativeEndian.Uint64(r.data[off : off+perfHeaderSize]),
		size: size,
		k:    perfSampleMin,
		raw:  uint32(len(raw)),
	}
	if r.timed {
		f.k, f.time = perfSampleMin+perfTimeSize, math.MaxUint64
	}
	f.end = f.k + uint64(f.raw)
	r.known = f
}
