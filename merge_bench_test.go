package eventpipe

import "testing"

// BenchmarkSimDrain compares the drain of simulated perf rings (two CPUs,
// their records interleaved in time, or in bursts of 50 per CPU) unordered
// and through the ordered merge. One op is one record; filling the rings
// is outside the timer.
func BenchmarkSimDrain(b *testing.B) {
	for _, c := range []struct {
		name    string
		ordered bool
		burst   int
	}{{"unordered", false, 1}, {"ordered/interleaved", true, 1}, {"ordered/bursts", true, 50}} {
		ordered := c.ordered
		b.Run(c.name, func(b *testing.B) {
			l := newLoop(b)
			p := newPipe(b, l, Options{Ordered: ordered})
			n := 0
			cat := p.Register(func(ev Event) { n += len(ev.Payload) })
			sim := p.AttachSim(2)
			payload := make([]byte, 60)
			const batch = 400
			b.ResetTimer()
			t := uint64(0)
			for done := 0; done < b.N; done += batch {
				b.StopTimer()
				for i := range batch {
					t++
					if err := sim.EmitAt(i/c.burst%2, t, cat, payload); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				p.onKick()
			}
			b.StopTimer()
			closePipe(b, l, p)
		})
	}
}
