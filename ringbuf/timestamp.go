//go:build linux

package ringbuf

import "encoding/binary"

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
