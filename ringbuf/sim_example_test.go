package ringbuf_test

import (
	"fmt"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// Simulated perf rings, in the kernel's layout, read by the same code as a
// PerfReader's: a handler tested without BPF. Peek holds the head record
// in place, so that a merge by time can choose among the rings' heads
// before it delivers one.
func ExamplePerfSim() {
	sim, err := ringbuf.NewPerfSim(2, 1, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sim.Close()
	_ = sim.Sample(1, 300, []byte("late"), nil)
	_ = sim.Sample(0, 100, []byte("early"), nil)
	_ = sim.Lost(0, 2)

	// The head of each ring, oldest first.
	h0, _, _ := sim.Peek(0, nil)
	h1, _, _ := sim.Peek(1, nil)
	fmt.Printf("heads: CPU %d at %d, CPU %d at %d\n", h0.CPU, h0.Time, h1.CPU, h1.Time)
	_, _ = sim.Advance(0) // delivered: consume it

	_, err = sim.Consume(ringbuf.Handler{
		SampleAt: func(cpu int, time uint64, data []byte) {
			fmt.Printf("CPU %d at %d: %q\n", cpu, time, data[:4]) // data keeps the kernel's padding
		},
		Lost: func(cpu int, n uint64) { fmt.Printf("CPU %d lost %d\n", cpu, n) },
	})
	fmt.Println(err, sim.Stats())
	// Output:
	// heads: CPU 0 at 100, CPU 1 at 300
	// CPU 0 lost 2
	// CPU 1 at 300: "late"
	// <nil> {2 2 0 0}
}
