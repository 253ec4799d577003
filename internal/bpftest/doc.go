// Package bpftest is test-only support: it makes the kernel itself write
// records into perf event rings and BPF ring buffers, so that the readers in
// package ringbuf are tested against what Linux really produces rather than
// against hand-made bytes.
//
// It is internal and not part of eventpipe's API. It speaks bpf(2) directly,
// through the shims of internal/bpfsys, with a handful of hand-assembled
// BPF programs and no C toolchain or BPF library.
//
// A [Producer] is a socket-filter program attached to one end of an AF_UNIX
// datagram socketpair. Each [Producer.Emit] sends one datagram; the filter
// runs inside that send, on the sending thread's CPU, and writes exactly one
// record holding the datagram's first RecordSize bytes, with
// bpf_perf_event_output, bpf_ringbuf_output, or bpf_ringbuf_reserve followed
// by submit or discard. Emit then reads back what the helper returned, so a
// test knows whether the record landed ([Stats]).
//
// For a perf event array the record goes to the slot of the current CPU: a
// test that opens one perf event should pin itself (runtime.LockOSThread and
// unix.SchedSetaffinity) to that CPU before emitting. Subtests run on
// goroutines of their own and must pin themselves.
//
// Tests start with [Require], which skips where BPF or perf events are not
// permitted and fails instead when EVENTPIPE_REQUIRE_BPF=1.
package bpftest
