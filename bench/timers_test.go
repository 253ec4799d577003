package bench

import (
	"context"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventpipe/eventpipe/loop"
)

// timerWindow bounds the random timeouts. It is short next to the time it
// takes to add and fire a million timers, so the figure is the work of
// adding and firing rather than waiting for the last one to come due.
const timerWindow = 50 * time.Millisecond

// randomTimeouts returns n timeouts uniform in [0, timerWindow), the same
// sequence on every call.
func randomTimeouts(n int) []time.Duration {
	r := rand.New(rand.NewPCG(4, 2))
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = time.Duration(r.Int64N(int64(timerWindow)))
	}
	return d
}

// BenchmarkTimers adds b.N one-shot timers with random timeouts and waits
// until all have fired; ns/op and B/op are per timer. Run with
// -benchtime=1000000x for the million-timer figure.
//
// The loop adds them all on its goroutine before Run and fires them from
// Run; time.AfterFunc's timers fire, each on a goroutine of its own, while
// the rest are still being added. Each side's callback only counts.
//
// Each side first runs the same round once untimed, so that the timed round
// finds the storage a long-running program would have: the runtime's
// per-P timer heaps keep their capacity between rounds, and so do the
// loop's heap and due list.
func BenchmarkTimers(b *testing.B) {
	b.Run("impl=time.AfterFunc", benchRuntimeTimers)
	b.Run("impl=loop", benchLoopTimers)
}

func benchRuntimeTimers(b *testing.B) {
	n := b.N
	timeouts := randomTimeouts(n)
	var fired atomic.Int64
	var done chan struct{}
	fn := func() {
		if fired.Add(1) == int64(n) {
			close(done)
		}
	}
	round := func() {
		fired.Store(0)
		done = make(chan struct{})
		for _, d := range timeouts {
			time.AfterFunc(d, fn)
		}
		<-done
	}
	round()

	b.ResetTimer()
	round()
	b.StopTimer()

	if got := fired.Load(); got != int64(n) {
		b.Fatalf("%d timers fired, want %d", got, n)
	}
}

func benchLoopTimers(b *testing.B) {
	n := b.N
	timeouts := randomTimeouts(n)
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	fired := 0
	fn := func() { fired++ }
	round := func() error {
		fired = 0
		for _, d := range timeouts {
			l.AfterFunc(d, fn)
		}
		// Run returns once no timer is left to fire.
		return l.Run(context.Background())
	}
	if err := round(); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	err = round()
	b.StopTimer()

	if err != nil {
		b.Fatal(err)
	}
	if fired != n {
		b.Fatalf("%d timers fired, want %d", fired, n)
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}
