package eventpipe

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// mallocsDuring counts the heap allocations fn makes (anyone's, in this
// process, as testing.AllocsPerRun does).
func mallocsDuring(fn func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	fn()
	runtime.ReadMemStats(&b)
	return b.Mallocs - a.Mallocs
}

// Records written by the kernel into perf arrays and a ring buffer are
// delivered, ordered or not, without allocating: a whole drain of
// hundreds of records allocates nothing.
func TestDeliveryAllocatesNothing(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		perf := perfArray(t)
		ring := ringMap(t, 64<<10)
		l := newLoop(t)
		p := newPipe(t, l, Options{Ordered: ordered, ReorderWindow: time.Nanosecond})
		n := 0
		p.Register(func(ev Event) { n += len(ev.Payload) & 1 })
		cpu := onlineCPUs(t)[0]
		require.NoError(t, p.AttachPerf(perf.FD(), ringbuf.PerfOptions{PagesPerCPU: 64}))
		require.NoError(t, p.AttachRing(ring.FD()))
		pp, rp := perfProducer(t, perf, 32), ringProducer(t, ring, 32)
		const records = 300
		fill := func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				pinCPU(t, cpu)
				buf := make([]byte, 32)
				for i := range records {
					if err := pp.Emit(rec(buf, 0, 0, uint32(i))); err != nil {
						t.Error(err)
					}
					if err := rp.Emit(rec(buf, 0, 1, uint32(i))); err != nil {
						t.Error(err)
					}
				}
			}()
			<-done
		}
		fill()
		runUntil(t, l, 10*time.Second, func() bool { return p.Stats().Delivered == 2*records }) // warm up
		fill()
		var err error
		mallocs := mallocsDuring(func() {
			for p.Stats().Delivered < 4*records && err == nil {
				_, err = l.RunOnce()
			}
		})
		require.NoError(t, err)
		t.Logf("ordered %v: %d allocations for %d records", ordered, mallocs, 2*records)
		require.Zero(t, mallocs)
		closePipe(t, l, p)
	}
}

// The simulated source's delivery allocates nothing either, ordered or
// not: Emit, the drain and the handler.
func TestSimAllocatesNothing(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		l := newLoop(t)
		p := newPipe(t, l, Options{Ordered: ordered})
		got := 0
		cat := p.Register(func(Event) { got++ })
		sim := p.AttachSim(2)
		payload := make([]byte, 40)
		i := 0
		allocs := testing.AllocsPerRun(500, func() {
			_ = sim.EmitAt(i%2, uint64(i), cat, payload)
			i++
			p.onKick()
		})
		require.Zero(t, allocs)
		require.Equal(t, i, got)
		closePipe(t, l, p)
	}
}
