// Package ringbuf reads the rings BPF programs write to user space: the
// per-CPU perf event rings behind a BPF_MAP_TYPE_PERF_EVENT_ARRAY
// (PerfReader, filled by bpf_perf_event_output) and the BPF ring buffer
// (RingReader, a BPF_MAP_TYPE_RINGBUF filled by bpf_ringbuf_output or
// bpf_ringbuf_reserve/submit), plus a Dispatcher that routes records by a
// leading category id.
//
// # Attaching a map
//
// The package loads no BPF programs and creates no maps: it takes the
// descriptor of a map the caller created with whatever tooling it uses. With
// cilium/ebpf, for instance:
//
//	coll, _ := ebpf.NewCollection(spec)
//	pr, err := ringbuf.NewPerfReader(coll.Maps["events"].FD(), ringbuf.PerfOptions{})
//	rr, err := ringbuf.NewRingReader(coll.Maps["logs"].FD())
//
// Both constructors take their own duplicate of the descriptor and check,
// with BPF_OBJ_GET_INFO_BY_FD, the type of the map behind that duplicate, so
// the caller may close its copy at any time and the map read is the map
// checked. NewPerfReader stores one perf event descriptor per CPU in the
// array (key = CPU id, which is where bpf_perf_event_output with
// BPF_F_CURRENT_CPU looks) through a map file of its own, opened by the
// map's id, and the kernel removes exactly those entries when Close releases
// that file: entries a newer reader has stored at the same keys meanwhile (a
// reload, a restart hand-over) stay. Without CAP_SYS_ADMIN, which opening by
// id needs, Close deletes the reader's keys instead, whoever holds them (see
// NewPerfReader). A perf event array must have at least as many entries as
// the highest CPU id read plus one; BPF programs see no output on a CPU
// whose slot is empty (bpf_perf_event_output returns -ENOENT).
//
// # Reading
//
// Each reader exposes one descriptor, Fd. An event loop watches it and
// calls Consume when it fires, which drains without blocking:
//
//	w, err := l.Watch(pr.Fd(), poller.Readable, func(poller.Events) {
//		pr.Consume(ringbuf.Handler{Sample: d.Sample})
//	})
//
// Both descriptors are epoll instances over the kernel objects, so the
// kernel's wakeup reaches the thread waiting on the loop directly, with no
// goroutine or thread in between: a perf record and a ring buffer record
// take the same path to the loop, whatever the Go scheduler is busy with.
// What readable means differs:
//
//   - A RingReader's Fd is readable while the ring holds anything the
//     reader has not consumed: a level, which checking does not change.
//   - A PerfReader's Fd is readable when the kernel has woken one of its
//     perf events, as PerfOptions says (after every record by default), so
//     records can sit in a ring while Fd is not readable; see "Latency and
//     wakeups". A perf event's wakeup is a token that the first readiness
//     check takes (perf_poll clears the flag it reports), and checking Fd,
//     or an epoll instance that contains it at any depth, checks the perf
//     events. A loop that runs on its own sees every wakeup. A loop embedded
//     in another poller does not: the host's check of the loop's descriptor
//     takes the wakeup, and the loop's watcher then may not fire. The host
//     still wakes and runs the loop, so such a loop checks Pending on every
//     iteration (a check hook) and drains when it reports records.
//
// Readers decide what to drain from the rings' own positions (the producer's
// head and the consumer's tail in the shared memory), never from Fd:
// Consume drains whatever the rings hold, whoever took the wakeup, and
// Pending and a Consume that finds every ring empty make no system call, so
// a loop can afford them after every wakeup.
//
// Without a loop, Poll drains what is pending, or waits on the same
// descriptor and then drains; it returns 0 only once its timeout has
// passed (a ring buffer's reserved first record aside), never for a wakeup
// that found nothing.
//
// Records are delivered without copying: the slice passed to a callback
// points into the shared ring and is valid only during the call (a perf record that
// wraps the end of its ring is reassembled in a per-ring scratch buffer,
// since perf rings are mapped once; BPF ring buffers are mapped twice in a
// row by the kernel, so their records are always contiguous). Consume and
// Poll allocate nothing per record and advance the ring's consumer position
// once per batch, so the producer's cache line is written once per drain,
// not once per record. Callbacks must not modify the slice: a BPF ring
// buffer is mapped read-only, and a write faults with SIGSEGV, which Go
// cannot recover from; a write into a perf record lands in the ring the
// kernel writes.
//
// A RingReader also drains without a callback: Begin, then Next and
// Record in the caller's own loop, then End (see RingBatch). The compiler
// inlines Next and Record, so a caller that routes records further (as
// package eventpipe does by category) makes no call per record but its own
// handler's; Consume, which calls a func value per record, is a loop over
// the same batch.
//
// Consume and Poll of one reader (and a RingReader's batches) must be
// called from one goroutine at a time; a second concurrent call returns
// an error wrapping unix.EBUSY rather than corrupting the ring. Pending
// belongs to that goroutine too (from any other it is only a snapshot).
// Fd, Stats, Size, Available and Close may be called from any goroutine. Readers start no goroutines. Closing a reader
// while another goroutine is blocked in Poll wakes that Poll, which returns
// an error wrapping os.ErrClosed; the mappings stay valid until the running
// call returns, and whichever of the two finishes last releases them. A
// handler that panics ends the call: the record it was given counts as
// consumed, the rest stay for the next call, and the reader remains usable.
//
// # Latency and wakeups
//
// By default the kernel wakes a perf reader after every record: lowest
// latency, one wakeup (and one trip through the event loop) per record.
// PerfOptions.WakeupEvents = n wakes it once every n records per CPU, and
// PerfOptions.Watermark = b each time more than b bytes have been written
// to a ring since its previous wakeup point (written, not pending: what the
// reader consumed meanwhile does not count). Both trade
// latency for fewer wakeups, and with both a quiet CPU can hold records
// back indefinitely: records below the threshold wait until more arrive or
// until something else makes the application call Consume (a timer, say).
// A watermark must leave room for the records that arrive while the reader
// is being woken, or the kernel drops them and reports PERF_RECORD_LOST;
// pick it well below the ring size. The BPF ring buffer wakes the reader
// when a record is committed while the reader has caught up, unless the
// program passes BPF_RB_NO_WAKEUP (or forces one with BPF_RB_FORCE_WAKEUP);
// that choice belongs to the BPF program. A ring buffer's readiness is its
// fill level, reserved records included: while the next record to read is
// reserved but not yet committed, Fd stays readable and Consume delivers
// nothing past it, so a level-triggered loop spins until the
// producer commits, as libbpf's does.
//
// # Untrusted input
//
// Ring memory is written by the kernel on behalf of BPF programs and is
// treated as untrusted: positions and record sizes are bounds-checked before
// any slice is formed. A corrupt ring (a size that is not a multiple of 8,
// a record longer than what was published, a head behind the tail) is
// resynchronised by dropping everything published so far, counted in Stats,
// and reported as an error wrapping ErrCorrupt; it never causes a panic or
// an out-of-bounds read.
//
// # Dispatching
//
// A Dispatcher routes records whose first four bytes are a little-endian
// uint32 category. Register returns ids in order starting at 0; a BPF
// program writes that id in front of each record. Dispatcher.Sample and
// Dispatcher.Record fit a Handler and RingReader.Consume directly.
//
// # Time, merging and simulation
//
// PerfOptions.Timestamps opens the perf events with PERF_SAMPLE_TIME on
// CLOCK_MONOTONIC; Handler.SampleAt receives each sample's time. Peek and
// Advance (between Begin and End, for a series of them, with Next doing
// both in one call) let a caller hold each ring's head record in place,
// without copying it, and decide which ring to deliver from next: a merge
// by time across CPUs, as package eventpipe does. ConsumeUntil then
// delivers a run of one ring's samples up to a time bound (the next ring's
// head) in that ring's own loop, holding the first sample past it as the
// new head: one call per run rather than per record. Inside Begin and End
// a ring's positions are read and stored once per batch, as Consume does,
// not once per record. PerfSim builds perf rings in ordinary memory and writes
// records into them exactly as the kernel does (samples with their padding
// and optional time, lost records, wraps); the same code reads them, so
// handlers can be tested without privileges.
package ringbuf
