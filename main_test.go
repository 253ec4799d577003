package eventpipe

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func newLoop(t testing.TB) *loop.Loop {
	t.Helper()
	l, err := loop.New()
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func newPipe(t testing.TB, l *loop.Loop, opts Options) *Pipe {
	t.Helper()
	p, err := New(l, opts)
	require.NoError(t, err)
	return p
}

// runUntil runs the loop until cond holds, failing after d. A timer keeps
// each iteration short, so cond is checked even when nothing arrives.
func runUntil(t testing.TB, l *loop.Loop, d time.Duration, cond func() bool) {
	t.Helper()
	poke := l.NewTimer(func() {})
	require.NoError(t, poke.Start(2*time.Millisecond, 2*time.Millisecond))
	defer poke.Close(nil)
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		_, err := l.RunOnce()
		require.NoError(t, err)
	}
}

// runFor runs the loop for about d.
func runFor(t testing.TB, l *loop.Loop, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	runUntil(t, l, d+time.Minute, func() bool { return time.Now().After(end) })
}

// closePipe closes p and runs the loop until its close callback ran.
func closePipe(t testing.TB, l *loop.Loop, p *Pipe) {
	t.Helper()
	done := false
	p.Close(func() { done = true })
	runUntil(t, l, 10*time.Second, func() bool { return done })
}

// pinCPU moves the calling goroutine for the rest of its life to an OS
// thread that runs only on cpu; the thread is never unlocked, so the
// runtime discards it afterwards. It reports a failure without stopping
// the goroutine, which need not be the test's.
func pinCPU(t testing.TB, cpu int) {
	t.Helper()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Errorf("pin to CPU %d: %v", cpu, err)
	}
}

// onlineCPUs returns the CPUs this process may run on.
func onlineCPUs(t testing.TB) []int {
	t.Helper()
	var set unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &set))
	var cpus []int
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func perfArray(t testing.TB) *bpftest.Map {
	t.Helper()
	bpftest.Require(t)
	m, err := bpftest.NewPerfEventArray(0)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func ringMap(t testing.TB, size int) *bpftest.Map {
	t.Helper()
	bpftest.Require(t)
	m, err := bpftest.NewRingBuf(size)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func perfProducer(t testing.TB, m *bpftest.Map, size int) *bpftest.Producer {
	t.Helper()
	p, err := bpftest.NewPerfProducer(m, size)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func ringProducer(t testing.TB, m *bpftest.Map, size int) *bpftest.Producer {
	t.Helper()
	p, err := bpftest.NewRingProducer(m, size)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// rec builds a record: category, source, sequence number, then filler.
func rec(buf []byte, cat, src, seq uint32) []byte {
	binary.LittleEndian.PutUint32(buf[0:], cat)
	binary.LittleEndian.PutUint32(buf[4:], src)
	binary.LittleEndian.PutUint32(buf[8:], seq)
	for i := 12; i < len(buf); i++ {
		buf[i] = byte(seq) + byte(i)
	}
	return buf
}

func monoNow(t testing.TB) uint64 {
	t.Helper()
	var ts unix.Timespec
	require.NoError(t, unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts))
	return uint64(ts.Nano())
}

func newLoopNoCleanup() (*loop.Loop, error) { return loop.New() }

// leakFDs returns the open descriptor count.
func leakFDs() int { return leakcheck.FDCount() }
