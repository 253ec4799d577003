package eventpipe_test

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/eventpipe/eventpipe"
	"github.com/eventpipe/eventpipe/loop"
)

// A handler tested without BPF: a simulated source emits what the BPF
// program would write, on an ordered pipe, and the loop delivers it in
// timestamp order across CPUs. This runs unprivileged.
func Example_sim() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	p, err := eventpipe.New(l, eventpipe.Options{Ordered: true})
	if err != nil {
		panic(err)
	}
	execs := p.Register(func(ev eventpipe.Event) {
		pid := binary.LittleEndian.Uint32(ev.Payload)
		fmt.Printf("t=%d cpu=%d exec pid %d\n", ev.Time, ev.CPU, pid)
	})
	p.OnLost(func(cpu int, n uint64) { fmt.Printf("cpu=%d lost %d\n", cpu, n) })

	sim := p.AttachSim(2)
	rec := make([]byte, 4)
	for _, e := range []struct {
		cpu  int
		time uint64
		pid  uint32
	}{{1, 300, 12}, {0, 100, 10}, {0, 200, 11}, {1, 400, 13}} {
		binary.LittleEndian.PutUint32(rec, e.pid)
		if err := sim.EmitAt(e.cpu, e.time, execs, rec); err != nil {
			panic(err)
		}
	}
	// The kernel reports a loss in the ring, after the records before it.
	if err := sim.Lose(1, 3); err != nil {
		panic(err)
	}
	// Run one pass: the pipe drains the simulated rings on the loop.
	if _, err := l.RunOnce(); err != nil {
		panic(err)
	}
	p.Close(nil)
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", p.Stats())
	// Output:
	// t=100 cpu=0 exec pid 10
	// t=200 cpu=0 exec pid 11
	// t=300 cpu=1 exec pid 12
	// t=400 cpu=1 exec pid 13
	// cpu=1 lost 3
	// {Delivered:4 Lost:3 Late:0 Errors:0 RingDropped:0}
}
