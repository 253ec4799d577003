package eventpipe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// With WakeupEvents far above the record rate the kernel never wakes the
// reader; MaxLatency still delivers. Without it, the record stays in the
// ring.
func TestMaxLatencyDelivers(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		m := perfArray(t)
		l := newLoop(t)
		cpu := onlineCPUs(t)[0]
		withBound := newPipe(t, l, Options{MaxLatency: 5 * time.Millisecond, Ordered: ordered})
		without := newPipe(t, l, Options{})
		got, gotWithout := 0, 0
		withBound.Register(func(Event) { got++ })
		without.Register(func(Event) { gotWithout++ })
		opts := ringbuf.PerfOptions{WakeupEvents: 1000, CPUs: []int{cpu}}
		require.NoError(t, withBound.AttachPerf(m.FD(), opts))
		// A second array for the pipe without a bound: one array's slots
		// hold one reader's events.
		m2 := perfArray(t)
		require.NoError(t, without.AttachPerf(m2.FD(), opts))
		prod, prod2 := perfProducer(t, m, 16), perfProducer(t, m2, 16)
		done := make(chan struct{})
		go func() {
			defer close(done)
			pinCPU(t, cpu)
			buf := make([]byte, 16)
			if err := prod.Emit(rec(buf, 0, 0, 0)); err != nil {
				t.Error(err)
			}
			if err := prod2.Emit(rec(buf, 0, 0, 0)); err != nil {
				t.Error(err)
			}
		}()
		<-done
		start := time.Now()
		runUntil(t, l, 10*time.Second, func() bool { return got == 1 })
		t.Logf("ordered %v: delivered %v after the write (bound 5ms, plus the reorder window when ordered)", ordered, time.Since(start))
		runFor(t, l, 50*time.Millisecond)
		require.Zero(t, gotWithout, "without MaxLatency the record waits for a wakeup that never comes")
		require.Equal(t, uint64(1), withBound.Stats().Delivered)
		closePipe(t, l, withBound)
		closePipe(t, l, without)
	}
}

// An idle tick costs no reader call: only the rings' positions are read.
func TestMaxLatencyIdleTick(t *testing.T) {
	bpftest.Require(t)
	for _, ordered := range []bool{false, true} {
		l := newLoop(t)
		p := newPipe(t, l, Options{MaxLatency: time.Millisecond, Ordered: ordered})
		_, err := p.CreatePerfArray(1)
		require.NoError(t, err)
		_, err = p.CreateRingBuf(4096)
		require.NoError(t, err)
		sim := p.AttachSim(2)
		ticks := 0
		probe := l.NewTimer(func() { ticks++ })
		require.NoError(t, probe.Start(time.Millisecond, time.Millisecond))
		runUntil(t, l, 10*time.Second, func() bool { return ticks >= 20 })
		require.Zero(t, p.ReaderCalls(), "idle ticks read the positions only")

		// The tick does drain a ring that holds something.
		got := 0
		p.Register(func(Event) { got++ })
		require.NoError(t, sim.Emit(1, 0, []byte("x")))
		runUntil(t, l, 10*time.Second, func() bool { return got == 1 })
		require.NotZero(t, p.ReaderCalls())
		probe.Close(nil)
		closePipe(t, l, p)
	}
}
