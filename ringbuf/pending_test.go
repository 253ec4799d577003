package ringbuf

import (
	"testing"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// Pending reads the producer and consumer positions: true from the moment
// a record is in a ring until Consume has taken it, false after Close.

func TestPerfReaderPending(t *testing.T) {
	m := newPerfArray(t)
	cpus := testCPUs(t)
	r, err := NewPerfReader(m.FD(), PerfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	if r.Pending() {
		t.Fatal("Pending on empty rings")
	}
	// One record on the last CPU: Pending looks at every ring.
	cpu := cpus[len(cpus)-1]
	emitSeq(t, p, cpu, 0, 1)
	for i := 0; i < 3; i++ {
		if !r.Pending() {
			t.Fatalf("check %d: Pending false with a record on CPU %d", i, cpu)
		}
	}
	if n, err := r.Consume(Handler{}); n != 1 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	if r.Pending() {
		t.Fatal("Pending after Consume")
	}
	if allocs := testing.AllocsPerRun(100, func() { r.Pending() }); allocs != 0 {
		t.Errorf("Pending allocates %v", allocs)
	}
	emitSeq(t, p, cpu, 1, 2)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Pending() {
		t.Fatal("Pending after Close")
	}
}

func TestRingReaderPending(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpftest.NewRingProducer(m, 16)
	p = newProducer(t, p, err)
	if r.Pending() {
		t.Fatal("Pending on an empty ring")
	}
	if err := p.Emit(record(make([]byte, 16), 0, 0)); err != nil {
		t.Fatal(err)
	}
	if !r.Pending() {
		t.Fatal("Pending false with a record in the ring")
	}
	if n, err := r.Consume(nil); n != 1 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	if r.Pending() {
		t.Fatal("Pending after Consume")
	}
	if allocs := testing.AllocsPerRun(100, func() { r.Pending() }); allocs != 0 {
		t.Errorf("Pending allocates %v", allocs)
	}
	if err := p.Emit(record(make([]byte, 16), 0, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Pending() {
		t.Fatal("Pending after Close")
	}
}
