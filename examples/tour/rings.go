package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/eventpipe/eventpipe"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// The tour's producers are tiny socket-filter programs that the repository's
// test helper loads: each datagram written to a socketpair makes the kernel
// write one record (the datagram's first recordSize bytes) into a perf event
// array or a BPF ring buffer. A real program loads its own BPF objects and
// attaches their maps in the same way, or has the pipe create them (see
// examples/cilium).
const (
	recordSize = 16
	records    = 1000
)

// ringsTour reads real BPF output through an EventPipe on a loop, beside a
// timer: a perf event array and a BPF ring buffer, records routed by their
// leading category to the handler registered for it.
func ringsTour() error {
	fmt.Println("\n-- BPF rings through an EventPipe --")
	if err := bpftest.Available(); err != nil {
		fmt.Printf("skipped: %v\n(the ring readers need root with CAP_BPF and CAP_PERFMON)\n", err)
		return nil
	}
	l, err := loop.New()
	if err != nil {
		return err
	}
	defer l.Close()
	// Ordered: the perf records of all CPUs come in the kernel's time
	// order, wherever the writing goroutine ran.
	p, err := eventpipe.New(l, eventpipe.Options{Ordered: true})
	if err != nil {
		return err
	}

	// Each record: category (uint32), sequence number (uint32), 8 bytes of
	// text. The category says which map it came through.
	type tally struct{ got, outOfOrder, last int }
	var perfTally, ringTally tally
	count := func(t *tally) func(ev eventpipe.Event) {
		return func(ev eventpipe.Event) {
			seq := int(binary.LittleEndian.Uint32(ev.Payload))
			if t.got > 0 && seq <= t.last {
				t.outOfOrder++
			}
			t.got, t.last = t.got+1, seq
		}
	}
	perfCat := p.Register(count(&perfTally))
	ringCat := p.Register(count(&ringTally))
	var lost uint64
	p.OnLost(func(cpu int, n uint64) { lost += n })

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
	if err := p.AttachPerf(perfMap.FD(), ringbuf.PerfOptions{PagesPerCPU: 16}); err != nil {
		return err
	}
	if err := p.AttachRing(ringMap.FD()); err != nil {
		return err
	}
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

	ticks := 0
	ticker := l.NewTimer(func() { ticks++ })
	if err := ticker.Start(0, 2e6); err != nil {
		return err
	}

	// The kernel writes the records from another goroutine while the loop
	// runs; once the pipe has delivered them all, closing it and the timer
	// lets Run return.
	var emitErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		emitErr = emit(perfProd, ringProd, perfCat, ringCat)
		var finish func()
		finish = func() {
			if emitErr == nil && p.Stats().Delivered < perfProd.Stats().Written+ringProd.Stats().Written {
				l.AfterFunc(1e6, finish)
				return
			}
			p.Close(nil)
			ticker.Close(nil)
		}
		_ = l.Post(finish)
	}()
	runErr := l.Run(context.Background())
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
	fmt.Printf("timer ticks meanwhile: %d; pipe: %+v\n", ticks, p.Stats())
	if uint64(perfTally.got) != ps.Written || uint64(ringTally.got) != ringProd.Stats().Written ||
		perfTally.outOfOrder+ringTally.outOfOrder != 0 || p.Stats().Errors != 0 {
		return fmt.Errorf("BPF records were lost or reordered")
	}
	fmt.Println("every record the kernel wrote was delivered once, in order.")
	return nil
}

// emit makes the kernel write the records, in sequence.
func emit(perfProd, ringProd *bpftest.Producer, perfCat, ringCat uint32) error {
	buf := make([]byte, recordSize)
	copy(buf[8:], "eventpip")
	for i := range records {
		binary.LittleEndian.PutUint32(buf[4:], uint32(i))
		binary.LittleEndian.PutUint32(buf, perfCat)
		if err := perfProd.Emit(buf); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(buf, ringCat)
		if err := ringProd.Emit(buf); err != nil {
			return err
		}
	}
	return nil
}
