package main

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// The tour's producers are tiny socket-filter programs that the repository's
// test helper loads: each datagram written to a socketpair makes the kernel
// write one record (the datagram's first recordSize bytes) into a perf event
// array or a BPF ring buffer. A real program would load its own BPF objects
// and hand the map descriptors to ringbuf in the same way.
const (
	recordSize = 16
	records    = 1000
)

// ringsTour reads real BPF output through a loop, beside a timer: a perf
// event array and a BPF ring buffer, each watched as one descriptor, routed
// by a Dispatcher on the records' leading category.
func ringsTour() error {
	fmt.Println("\n-- BPF rings through the loop --")
	if err := bpftest.Available(); err != nil {
		fmt.Printf("skipped: %v\n(the ring readers need root with CAP_BPF and CAP_PERFMON)\n", err)
		return nil
	}
	l, err := loop.New()
	if err != nil {
		return err
	}
	defer l.Close()

	perfMap, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		return err
	}
	defer perfMap.Close()
	ringMap, err := bpftest.NewRingBuf(256 << 10)
	if err != nil {
		return err
	}
	defer ringMap.Close()

	perf, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{PagesPerCPU: 16})
	if err != nil {
		return err
	}
	defer perf.Close()
	ring, err := ringbuf.NewRingReader(ringMap.FD())
	if err != nil {
		return err
	}
	defer ring.Close()

	perfProd, err := bpftest.NewPerfProducer(perfMap, recordSize)
	if err != nil {
		return err
	}
	defer perfProd.Close()
	ringProd, err := bpftest.NewRingProducer(ringMap, recordSize)
	if err != nil {
		return err
	}
	defer ringProd.Close()

	// Each record: category (uint32), sequence number (uint32), 8 bytes of
	// text. The category says which producer sent it.
	type tally struct {
		got, outOfOrder int
		lastSeq         map[int]int // per CPU
	}
	perfTally := tally{lastSeq: map[int]int{}}
	ringTally := tally{lastSeq: map[int]int{}}
	count := func(t *tally) func(cpu int, payload []byte) {
		return func(cpu int, payload []byte) {
			seq := int(binary.LittleEndian.Uint32(payload))
			if last, ok := t.lastSeq[cpu]; ok && seq <= last {
				t.outOfOrder++
			}
			t.lastSeq[cpu] = seq
			t.got++
		}
	}
	d := ringbuf.NewDispatcher()
	perfCat := d.Register(count(&perfTally))
	ringCat := d.Register(count(&ringTally))

	var lost uint64
	perfHandler := ringbuf.Handler{Sample: d.Sample, Lost: func(cpu int, n uint64) { lost += n }}
	perfWatch, err := l.Watch(perf.Fd(), poller.Readable, func(poller.Events) { _, _ = perf.Consume(perfHandler) })
	if err != nil {
		return err
	}
	ringWatch, err := l.Watch(ring.Fd(), poller.Readable, func(poller.Events) { _, _ = ring.Consume(d.Record) })
	if err != nil {
		return err
	}
	ticks := 0
	ticker := l.NewTimer(func() { ticks++ })
	if err := ticker.Start(0, 2e6); err != nil {
		return err
	}

	// The kernel writes the records from another goroutine while the loop
	// runs; once all are written, a posted task drains what is left and
	// closes the handles, which lets Run return.
	var emitErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, recordSize)
		copy(buf[8:], "eventpip")
		for i := range records {
			binary.LittleEndian.PutUint32(buf[4:], uint32(i))
			binary.LittleEndian.PutUint32(buf, perfCat)
			if emitErr = perfProd.Emit(buf); emitErr != nil {
				break
			}
			binary.LittleEndian.PutUint32(buf, ringCat)
			if emitErr = ringProd.Emit(buf); emitErr != nil {
				break
			}
		}
		_ = l.Post(func() {
			_, _ = perf.Consume(perfHandler)
			_, _ = ring.Consume(d.Record)
			perfWatch.Close(nil)
			ringWatch.Close(nil)
			ticker.Close(nil)
		})
	}()
	runErr := l.Run(nil)
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	if emitErr != nil {
		return emitErr
	}

	ps := perfProd.Stats()
	fmt.Printf("perf event array: kernel wrote %d, delivered %d, lost %d (reported by the kernel: %d), out of order %d\n",
		ps.Written, perfTally.got, ps.Dropped, lost, perfTally.outOfOrder)
	fmt.Printf("BPF ring buffer:  kernel wrote %d, delivered %d, out of order %d\n",
		ringProd.Stats().Written, ringTally.got, ringTally.outOfOrder)
	fmt.Printf("timer ticks meanwhile: %d; dispatcher: %+v\n", ticks, d.Stats())
	if uint64(perfTally.got) != ps.Written || uint64(ringTally.got) != ringProd.Stats().Written ||
		perfTally.outOfOrder+ringTally.outOfOrder != 0 || d.Dropped() != 0 {
		return fmt.Errorf("BPF records were lost or reordered")
	}
	fmt.Println("every record the kernel wrote was delivered once, in order.")
	return nil
}
