// Package eventpipe is the EventPipe: kernel-to-user event delivery from
// BPF programs, on a loop. One Pipe reads any number of perf event arrays
// (a ring per CPU) and BPF ring buffers, routes every record by the
// little-endian uint32 category it starts with to the handler registered
// for that category, and counts what it delivered, what the kernel lost and
// what it could not deliver. It runs on a loop.Loop beside the program's
// sockets, timers and signals, in one thread.
//
//	l, _ := loop.New()
//	p, _ := eventpipe.New(l, eventpipe.Options{MaxLatency: 10 * time.Millisecond})
//	execs := p.Register(func(ev eventpipe.Event) { ... ev.Payload ... }) // category 0
//	perfFD, _ := p.CreatePerfArray(8)   // give perfFD to the BPF program
//	ringFD, _ := p.CreateRingBuf(1 << 20)
//	_ = l.Run(ctx)
//
// A BPF program writes records that start with the category id:
//
//	struct rec { __u32 category; __u32 pid; char comm[16]; } r = { EXECS, ... };
//	bpf_perf_event_output(ctx, &perf_map, BPF_F_CURRENT_CPU, &r, sizeof(r));
//	bpf_ringbuf_output(&ring_map, &r, sizeof(r), 0);
//
// Maps come from CreatePerfArray and CreateRingBuf (the pipe's, closed with
// it) or from the program's loader through AttachPerf and AttachRing (the
// caller's: the pipe keeps duplicates). examples/cilium loads a program
// written in C with cilium/ebpf and reads its maps through a pipe.
//
// # Delivery and cost
//
// Each source is one watched descriptor. A record is delivered as an Event
// whose Payload points into the ring: nothing is copied and nothing is
// allocated per record, ordered or not. Handlers run on the loop goroutine
// and must not keep Payload past their return. A handler that panics ends
// the loop's pass as any callback's panic does; its record counts as
// delivered, and the records after it follow on the next pass.
//
// Per record the pipe costs about what a bare reader with a
// ringbuf.Dispatcher costs, often less: the category lookup is inlined,
// and the handler is the one indirect call. What a drain adds is a
// wakeup: one pass of the loop, an epoll_wait and the loop's own phases,
// some microseconds when the kernel has just run on the CPU and left the
// caches cold. So the number of records per wakeup sets the throughput
// more than anything else: perf's WakeupEvents or Watermark, with rings
// large enough to hold what comes between two wakeups, trade latency for
// fewer of them (and MaxLatency bounds that latency).
//
// Options.MaxLatency bounds how long a record can wait when the kernel does
// not wake the reader for it (perf's WakeupEvents or Watermark batch the
// wakeups): a loop timer of that period compares each ring's head and tail
// positions, which are in memory shared with the kernel. A tick on idle
// rings therefore costs one timer callback and no system call; only a ring
// that holds records is drained.
//
// A perf event's wakeup is taken by the first readiness check of it, and
// when the loop is embedded in another poller that check is the host's, so
// the pipe's watcher may not fire for records that are there. The pipe
// therefore also looks at its perf rings' positions after every poll of
// the loop (a check hook: no system call) and drains those that hold
// records.
//
// # Order across CPUs
//
// Each perf ring is in order, but the rings of different CPUs are read one
// after another. Options.Ordered merges them by the kernel's timestamps
// (perf's PERF_SAMPLE_TIME, on CLOCK_MONOTONIC, so Event.Time compares with
// unix.ClockGettime(unix.CLOCK_MONOTONIC, ...)): a record is held, in its
// ring, until every other ring holds a later record or until it is
// ReorderWindow old. A CPU's own records are never reordered, even when
// their timestamps go backwards; such records, and records that arrive
// after a later one was delivered, are delivered and counted in
// Stats.Late, never dropped.
//
// The merge reads each ring a window of records at a time, in place (no
// copy), and keeps the rings on a heap by the time of their next record:
// a burst from one CPU goes out with one comparison per record, records
// that alternate between CPUs with a heap step each. The window follows
// the records: a ring whose records come in bursts is looked at one
// record at a time, the rest of each burst read in the ring's own loop
// once, as an unordered pipe reads it. The hold's cost is
// the window itself: when the last records of a burst sit in one ring
// while the other rings are empty, they wait ReorderWindow, as the empty
// CPUs might still be writing older ones. A pipe that needs records sooner
// than that trades order for latency with a shorter window.
//
// # Losses
//
// A perf ring that is full drops records and says so: the pipe passes the
// kernel's counts to OnLost and sums them in Stats.Lost. A BPF ring buffer
// that is full drops silently: bpf_ringbuf_output and bpf_ringbuf_reserve
// fail inside the program, and user space never learns the record existed.
// The usual remedy is a per-CPU counter map the program increments when the
// call fails; CountDrops names it, and Stats.RingDropped reports its sum.
// Records too short for a category or of a category nobody registered go to
// OnError (wrapping ringbuf.ErrShortRecord or ringbuf.ErrUnknownCategory)
// and count in Stats.Errors, as do corrupt rings (ringbuf.ErrCorrupt).
//
// # Testing without privileges
//
// Reading real rings needs CAP_BPF and CAP_PERFMON (or root). A program's
// own tests need neither: AttachSim adds simulated per-CPU perf rings, in
// ordinary memory, that Sim.Emit, EmitAt, Lose and Corrupt fill with
// records laid out exactly as the kernel lays them out, read by the same
// ringbuf code that reads the kernel's rings. A CI job without CAP_BPF
// builds its pipe as in production, attaches a Sim instead of (or besides)
// the maps, emits the records its BPF program would write, runs the loop
// and checks what its handlers did; see the example.
//
// # Closing
//
// Close closes the pipe's watchers and timer, its readers (taking their
// events out of the perf event arrays) and the maps it created; its close
// callback runs once all are closed. The watchers and timers are ordinary
// loop handles: the loop's Walk sees them, and if Shutdown (or anyone)
// closes one, the whole pipe ends as if Close had been called.
//
// A Pipe is used from its loop's goroutine; Stats may be read from any.
package eventpipe
