package eventpipe

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// With WakeupEvents far above the record rate the kernel never wakes the
// reader; MaxLatency still delivers. Without it, on a loop with nothing
// else to do, the record stays in the ring.
func TestMaxLatencyDelivers(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		m, m2 := perfArray(t), perfArray(t) // one array's slots hold one reader's events
		l, l2 := newLoop(t), newLoop(t)
		cpu := onlineCPUs(t)[0]
		withBound := newPipe(t, l, Options{MaxLatency: 5 * time.Millisecond, Ordered: ordered})
		without := newPipe(t, l2, Options{Ordered: ordered})
		got := 0
		withBound.Register(func(Event) { got++ })
		without.Register(func(Event) {})
		opts := ringbuf.PerfOptions{WakeupEvents: 1000, CPUs: []int{cpu}}
		require.NoError(t, withBound.AttachPerf(m.FD(), opts))
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
		require.Equal(t, uint64(1), withBound.Stats().Delivered)
		closePipe(t, l, withBound)

		// The control: a loop that only waits. It iterates when its
		// context ends, and a pass of the loop does drain, so look
		// before that.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		ran := make(chan error, 1)
		go func() { ran <- l2.Run(ctx) }()
		time.Sleep(100 * time.Millisecond)
		require.Zero(t, without.Stats().Delivered, "without MaxLatency the record waits for a wakeup that never comes")
		require.ErrorIs(t, <-ran, context.DeadlineExceeded)
		cancel()
		closePipe(t, l2, without)
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

// A loop embedded in a host's poller: the host's readiness check of the
// loop's descriptor takes the perf events' wakeups before the loop's own
// poll sees them, so the pipe's watcher may never fire. The pipe still
// delivers every record, from the rings' positions, on the loop's next
// pass.
func TestEmbeddedLoopDelivers(t *testing.T) {
	m := perfArray(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	got := 0
	cat := p.Register(func(Event) { got++ })
	cpu := onlineCPUs(t)[0]
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{CPUs: []int{cpu}}))
	prod := perfProducer(t, m, 16)
	host, err := poller.New()
	require.NoError(t, err)
	defer host.Close()
	require.NoError(t, host.Add(l.Fd(), poller.Readable, 0))

	const n = 50
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		pinCPU(t, cpu)
		buf := make([]byte, 16)
		for i := range n {
			if err := prod.Emit(rec(buf, cat, 0, uint32(i))); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	events := make([]poller.Event, 4)
	deadline := time.Now().Add(10 * time.Second)
	for got < n && time.Now().Before(deadline) {
		_, err := host.Wait(events, 20*time.Millisecond)
		require.NoError(t, err)
		_, err = l.RunNoWait()
		require.NoError(t, err)
	}
	<-emitted
	require.Equal(t, n, got)
	closePipe(t, l, p)
}
