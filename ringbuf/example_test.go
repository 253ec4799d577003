package ringbuf_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// A BPF program prefixes each record with a little-endian category; the
// Dispatcher hands the rest to the handler registered for it.
func Example_dispatcher() {
	d := ringbuf.NewDispatcher()
	exec := d.Register(func(cpu int, payload []byte) {
		fmt.Printf("exec on CPU %d: %s\n", cpu, payload)
	})
	exit := d.Register(func(cpu int, payload []byte) {
		fmt.Printf("exit on CPU %d: code %d\n", cpu, binary.LittleEndian.Uint32(payload))
	})

	rec := func(cat uint32, payload []byte) []byte {
		return append(binary.LittleEndian.AppendUint32(nil, cat), payload...)
	}
	_ = d.Dispatch(0, rec(exec, []byte("/bin/true")))
	_ = d.Dispatch(1, rec(exit, binary.LittleEndian.AppendUint32(nil, 3)))

	err := d.Dispatch(1, rec(7, nil))
	fmt.Println(errors.Is(err, ringbuf.ErrUnknownCategory), err)
	err = d.Dispatch(1, []byte{1, 0})
	fmt.Println(errors.Is(err, ringbuf.ErrShortRecord), err)
	fmt.Printf("%+v\n", d.Stats())
	// Output:
	// exec on CPU 0: /bin/true
	// exit on CPU 1: code 3
	// true ringbuf: dispatch: unknown record category 7 (2 registered)
	// true ringbuf: dispatch: record of 2 bytes is shorter than its category
	// {Dispatched:2 Short:1 Unknown:1}
}

// Reading the perf event array a BPF program writes to with
// bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, ...). mapFD comes
// from whatever loaded the program, for instance cilium/ebpf's
// coll.Maps["events"].FD(); here a small socket-filter program stands in,
// and runs once per emit. The example needs the kernel to allow BPF (root
// or CAP_BPF with CAP_PERFMON).
func ExampleNewPerfReader() {
	mapFD, emit, done := examplePerfProgram()
	defer done()

	r, err := ringbuf.NewPerfReader(mapFD, ringbuf.PerfOptions{PagesPerCPU: 16, CPUs: []int{0}})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	d := ringbuf.NewDispatcher()
	d.Register(func(cpu int, payload []byte) {
		// payload is only valid here; a perf record keeps the kernel's
		// padding to 8 bytes, so the program's records carry their length
		// (here: 4 bytes of text).
		fmt.Printf("CPU %d: %s\n", cpu, payload[:4])
	})
	h := ringbuf.Handler{
		Sample: d.Sample,
		Lost:   func(cpu int, n uint64) { log.Printf("CPU %d: %d records lost", cpu, n) },
	}
	emit("exec")
	emit("exit")
	// Or watch r.Fd() in an event loop and call r.Consume(h).
	n, err := r.Poll(-1, h) // the records are there: it returns at once
	fmt.Println(n, err)
	// Output:
	// CPU 0: exec
	// CPU 0: exit
	// 2 <nil>
}

// Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) a program fills with
// bpf_ringbuf_output or bpf_ringbuf_reserve/submit. As above, a small
// program stands in for the caller's own and needs the kernel to allow BPF.
func ExampleNewRingReader() {
	mapFD, emit, done := exampleRingProgram(1 << 14)
	defer done()

	r, err := ringbuf.NewRingReader(mapFD)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	emit("record 1")
	emit("record 2")
	fmt.Printf("%d of %d bytes pending\n", r.Available(), r.Size())
	n, err := r.Poll(-1, func(data []byte) {
		fmt.Printf("%s\n", data) // data points into the ring: copy to keep it
	})
	fmt.Println(n, err)
	// Output:
	// 32 of 16384 bytes pending
	// record 1
	// record 2
	// 2 <nil>
}

// Draining a ring buffer in the caller's own loop: Next and Record are
// inlined, so the record goes to the caller's code with no call through a
// func value. End is deferred so that a panicking handler still ends the
// batch (its record counts as consumed) and releases the reader.
func ExampleRingReader_Begin() {
	mapFD, emit, done := exampleRingProgram(1 << 14)
	defer done()

	r, err := ringbuf.NewRingReader(mapFD)
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	emit("record 1")
	emit("record 2")
	drain := func() (n int, err error) {
		b, err := r.Begin()
		if err != nil {
			return 0, err
		}
		defer func() { n, err = b.End() }()
		for b.Next() {
			fmt.Printf("%s\n", b.Record()) // points into the ring: copy to keep it
		}
		return 0, nil
	}
	fmt.Println(drain())
	fmt.Println(r.Stats().Records, r.Available())
	// Output:
	// record 1
	// record 2
	// 2 <nil>
	// 2 0
}

// A PerfReader on a loop.Loop that is itself embedded in another poller
// (the host polls l.Fd(), then calls l.RunNoWait): the host's readiness
// check takes the perf events' wakeups, so the watcher alone may miss
// them. The host still runs the loop once per wakeup, and a check hook
// drains whatever the rings hold; Pending reads the ring positions and
// costs no system call, so it can run on every iteration.
func ExamplePerfReader_Pending() {
	var mapFD int // the BPF_MAP_TYPE_PERF_EVENT_ARRAY's descriptor

	r, err := ringbuf.NewPerfReader(mapFD, ringbuf.PerfOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	l, err := loop.New()
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	h := ringbuf.Handler{Sample: func(cpu int, data []byte) { fmt.Printf("CPU %d: %x\n", cpu, data) }}
	consume := func() {
		if _, err := r.Consume(h); err != nil {
			log.Print(err)
		}
	}
	if _, err := l.Watch(r.Fd(), poller.Readable, func(poller.Events) { consume() }); err != nil {
		log.Fatal(err)
	}
	drain := l.NewCheck(func() {
		if r.Pending() {
			consume()
		}
	})
	if err := drain.Start(); err != nil {
		log.Fatal(err)
	}
	// ... the host registers l.Fd() in its own poller and calls
	// l.RunNoWait() each time it reports l.Fd() readable.
}
