package bpftest

import "golang.org/x/sys/unix"

// RingRecordLen returns how many bytes of a BPF ring buffer's data area one
// record of recordSize bytes takes: the 8-byte header (length with the BUSY
// and DISCARD bits, then pg_off) plus the data, rounded up to 8 so that the
// next header is 8-byte aligned. A ring of size bytes holds
// size/RingRecordLen(n) such records before bpf_ringbuf_output fails.
func RingRecordLen(recordSize int) int {
	return (recordSize + unix.BPF_RINGBUF_HDR_SZ + 7) &^ 7
}

// PerfRawSize returns what the kernel writes into the u32 size field of the
// PERF_SAMPLE_RAW part of a sample carrying recordSize bytes. It is not
// recordSize: the kernel pads the raw data so that the u32 size plus the data
// end 8-byte aligned, and counts the padding in the size.
func PerfRawSize(recordSize int) int {
	return (recordSize+4+7)&^7 - 4
}

// PerfRecordLen returns how many bytes of a perf ring one PERF_RECORD_SAMPLE
// carrying recordSize raw bytes takes, perf_event_header.size: the 8-byte
// header, the u32 raw size and PerfRawSize(recordSize) bytes. A data area of
// size bytes holds (size-1)/PerfRecordLen(n) of them from empty, because the
// kernel keeps one byte free to tell a full ring from an empty one.
func PerfRecordLen(recordSize int) int {
	return 8 + 4 + PerfRawSize(recordSize)
}
