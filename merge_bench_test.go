package eventpipe

import (
	"testing"
	"time"
)

// BenchmarkSimDrain compares the drain of simulated perf rings unordered
// and through the ordered merge: one ring, or two CPUs whose records are
// interleaved in time one by one or in bursts of 50 per CPU. The drain is
// timed by itself and reported as ns/record; ns/op also counts filling the
// rings (stopping the benchmark's timer for every fill would cost more
// than the drain and disturb it).
func BenchmarkSimDrain(b *testing.B) {
	for _, c := range []struct {
		name    string
		ordered bool
		cpus    int
		burst   int
	}{
		{"unordered", false, 2, 1},
		{"ordered/one-ring", true, 1, 1},
		{"ordered/bursts", true, 2, 50},
		{"ordered/interleaved", true, 2, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := newLoop(b)
			p := newPipe(b, l, Options{Ordered: c.ordered})
			n := 0
			cat := p.Register(func(ev Event) { n += len(ev.Payload) })
			sim := p.AttachSim(c.cpus)
			payload := make([]byte, 60)
			batch := 200 * c.cpus // what the simulated rings hold
			var drain time.Duration
			t := uint64(0)
			for done := 0; done < b.N; done += batch {
				for i := range batch {
					t++
					if err := sim.EmitAt(i/c.burst%c.cpus, t, cat, payload); err != nil {
						b.Fatal(err)
					}
				}
				start := time.Now()
				p.onKick()
				drain += time.Since(start)
			}
			b.StopTimer()
			if got, want := p.Stats().Delivered, uint64((b.N+batch-1)/batch*batch); got != want {
				b.Fatalf("delivered %d records, want %d", got, want)
			}
			b.ReportMetric(float64(drain.Nanoseconds())/float64(b.N), "ns/record")
			closePipe(b, l, p)
		})
	}
}
