package eventpipe

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// Walk sees the pipe's watchers and timers as loop handles, and a Walk that
// closes every handle (the uv_walk idiom) ends the pipe as its Close would.
func TestWalkClosingEverythingEndsThePipe(t *testing.T) {
	m := perfArray(t)
	cpu := onlineCPUs(t)[0]
	l := newLoop(t)
	before := leakFDs()
	p := newPipe(t, l, Options{MaxLatency: time.Millisecond})
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}))
	_, err := p.CreateRingBuf(4096)
	require.NoError(t, err)

	seen := 0
	l.Walk(func(h loop.Handle) { seen++ })
	require.GreaterOrEqual(t, seen, 3, "Walk saw %d handles: the pipe's watchers and timers are loop handles", seen)

	l.Walk(func(h loop.Handle) { h.Close(nil) })
	runUntil(t, l, 5*time.Second, func() bool { return p.closed })
	_, err = m.LookupU32(uint32(cpu))
	require.ErrorIs(t, err, unix.ENOENT, "the pipe's perf slots are emptied")
	runFor(t, l, 5*time.Millisecond)
	require.Equal(t, before, leakFDs())
}

// Shutdown closes the pipe's handles and so the pipe: its descriptors,
// mappings and map slots are released.
func TestShutdownEndsThePipe(t *testing.T) {
	m := perfArray(t)
	cpu := onlineCPUs(t)[0]
	before := leakFDs()
	l, err := newLoopNoCleanup()
	require.NoError(t, err)
	p := newPipe(t, l, Options{MaxLatency: time.Millisecond, Ordered: true})
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}))
	_, err = p.CreatePerfArray(1)
	require.NoError(t, err)
	_, err = p.CreateRingBuf(4096)
	require.NoError(t, err)
	_ = p.AttachSim(2)
	_, err = m.LookupU32(uint32(cpu))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Shutdown(ctx))
	require.True(t, p.closed)
	_, err = m.LookupU32(uint32(cpu))
	require.ErrorIs(t, err, unix.ENOENT)
	require.Equal(t, before, leakFDs(), "Shutdown left descriptors of the pipe open")
}

// A pipe Close requested before Shutdown still gets its callback, once.
func TestShutdownRunsARequestedPipeClose(t *testing.T) {
	before := leakFDs()
	l, err := newLoopNoCleanup()
	require.NoError(t, err)
	p := newPipe(t, l, Options{MaxLatency: time.Millisecond})
	_ = p.AttachSim(1)
	closed := 0
	p.Close(func() { closed++ })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.Shutdown(ctx))
	require.Equal(t, 1, closed)
	require.Equal(t, before, leakFDs())
}
