package eventpipe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// CreatePerfArray makes a perf event array with a slot per possible CPU;
// a BPF program writing into it reaches the handler of each record's
// category; categories count from 0; bad records reach OnError with the
// ringbuf sentinels and are counted.
func TestCreatePerfArrayDispatch(t *testing.T) {
	bpftest.Require(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	var errs []error
	p.OnError(func(err error) { errs = append(errs, err) })

	var got [3][]Event
	for i := range got {
		cat := p.Register(func(ev Event) {
			ev.Payload = append([]byte(nil), ev.Payload...)
			got[i] = append(got[i], ev)
		})
		require.Equal(t, uint32(i), cat)
	}
	fd, err := p.CreatePerfArray(1)
	require.NoError(t, err)
	m, err := bpftest.OpenMap(fd)
	require.NoError(t, err)
	defer m.Close()
	possible, err := bpftest.PossibleCPUs()
	require.NoError(t, err)
	require.Equal(t, possible, m.MaxEntries())
	for _, cpu := range onlineCPUs(t) {
		_, err := m.LookupU32(uint32(cpu))
		require.NoError(t, err, "CPU %d has a perf event in the pipe's map", cpu)
	}

	prod := perfProducer(t, m, 16)
	cpu := onlineCPUs(t)[0]
	done := make(chan struct{})
	go func() {
		defer close(done)
		pinCPU(t, cpu)
		buf := make([]byte, 16)
		for seq := range uint32(30) {
			if err := prod.Emit(rec(buf, seq%3, 0, seq)); err != nil {
				t.Error(err)
			}
		}
		if err := prod.Emit(rec(buf, 7, 0, 99)); err != nil { // nobody registered 7
			t.Error(err)
		}
	}()
	<-done
	runUntil(t, l, 10*time.Second, func() bool { return p.Stats().Delivered+p.Stats().Errors == 31 })
	for i := range got {
		require.Len(t, got[i], 10)
		for j, ev := range got[i] {
			require.Equal(t, uint32(i), ev.Category)
			require.Equal(t, cpu, ev.CPU)
			require.Zero(t, ev.Time)
			require.Equal(t, uint32(j*3+i), binary.LittleEndian.Uint32(ev.Payload[4:]))
			require.Len(t, ev.Payload, bpftest.PerfRawSize(16)-4)
		}
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ringbuf.ErrUnknownCategory)
	require.Equal(t, Stats{Delivered: 30, Errors: 1}, p.Stats())
	closePipe(t, l, p)
	// The pipe's map is closed; only our duplicate keeps it, and the
	// pipe's events are out of it.
	_, err = m.LookupU32(uint32(cpu))
	require.ErrorIs(t, err, unix.ENOENT)
}

// A ring buffer record shorter than its category reaches OnError wrapping
// ErrShortRecord; CPU is -1 for ring buffer records.
func TestRingBufShortRecord(t *testing.T) {
	bpftest.Require(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	var errs []error
	p.OnError(func(err error) { errs = append(errs, err) })
	var evs []Event
	p.Register(func(ev Event) { evs = append(evs, ev) })
	fd, err := p.CreateRingBuf(os.Getpagesize())
	require.NoError(t, err)
	m, err := bpftest.OpenMap(fd)
	require.NoError(t, err)
	defer m.Close()
	short := ringProducer(t, m, 3)
	full := ringProducer(t, m, 9)
	require.NoError(t, short.Emit([]byte{0, 0, 0}))
	require.NoError(t, full.Emit([]byte{0, 0, 0, 0, 1, 2, 3, 4, 5}))
	runUntil(t, l, 10*time.Second, func() bool { return len(evs) == 1 && len(errs) == 1 })
	require.ErrorIs(t, errs[0], ringbuf.ErrShortRecord)
	require.Equal(t, -1, evs[0].CPU)
	require.Equal(t, []byte{1, 2, 3, 4, 5}, evs[0].Payload)
	require.Equal(t, Stats{Delivered: 1, Errors: 1}, p.Stats())
	closePipe(t, l, p)
}

// Three ring buffers and two perf arrays, fed at once from five
// goroutines: every record arrives once, in its source's order.
func TestManySources(t *testing.T) {
	bpftest.Require(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	const perSource = 300
	type key struct{ src, cpu int }
	next := map[uint32]uint32{}
	bad := 0
	cat := p.Register(func(ev Event) {
		src := binary.LittleEndian.Uint32(ev.Payload)
		seq := binary.LittleEndian.Uint32(ev.Payload[4:])
		if seq != next[src] {
			bad++
		}
		next[src] = seq + 1
	})
	var prods []*bpftest.Producer
	for range 3 {
		m := ringMap(t, 64<<10)
		require.NoError(t, p.AttachRing(m.FD()))
		prods = append(prods, ringProducer(t, m, 16))
	}
	for range 2 {
		m := perfArray(t)
		// The caller's descriptor stays the caller's: closing it now
		// changes nothing for the pipe.
		require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{PagesPerCPU: 16}))
		prods = append(prods, perfProducer(t, m, 16))
	}
	cpus := onlineCPUs(t)
	var wg sync.WaitGroup
	for i, prod := range prods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One CPU per perf producer: a source's order is its ring's.
			pinCPU(t, cpus[i%len(cpus)])
			buf := make([]byte, 16)
			for seq := range uint32(perSource) {
				if err := prod.Emit(rec(buf, cat, uint32(i), seq)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Stats is read from another goroutine meanwhile: the race detector
	// checks it is safe, and the counts only grow.
	stop := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		var last Stats
		for {
			select {
			case <-stop:
				watched <- nil
				return
			default:
			}
			s := p.Stats()
			if s.Delivered < last.Delivered || s.Errors != 0 {
				watched <- fmt.Errorf("stats went from %+v to %+v", last, s)
				return
			}
			last = s
		}
	}()
	runUntil(t, l, 30*time.Second, func() bool { return p.Stats().Delivered == 5*perSource })
	close(stop)
	require.NoError(t, <-watched)
	wg.Wait()
	for _, prod := range prods {
		require.Equal(t, bpftest.Stats{Written: perSource}, prod.Stats())
	}
	require.Zero(t, bad)
	for i := range uint32(5) {
		require.Equal(t, uint32(perSource), next[i])
	}
	require.Equal(t, Stats{Delivered: 5 * perSource}, p.Stats())
	closePipe(t, l, p)
}

// OnLost reports exactly what the kernel dropped from an overrun ring.
func TestLostExact(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprintf("ordered=%v", ordered), func(t *testing.T) { testLostExact(t, ordered) })
	}
}

func testLostExact(t *testing.T, ordered bool) {
	m := perfArray(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: ordered, ReorderWindow: time.Nanosecond})
	delivered := 0
	cat := p.Register(func(Event) { delivered++ })
	var lost uint64
	p.OnLost(func(cpu int, n uint64) { lost += n })
	cpu := onlineCPUs(t)[0]
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}}))
	prod := perfProducer(t, m, 64)

	emit := func(n int) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			pinCPU(t, cpu)
			buf := make([]byte, 64)
			for i := range n {
				if err := prod.Emit(rec(buf, cat, 0, uint32(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		<-done
	}
	emit(500) // a page holds about 50 (40 with timestamps): the loop is not running, most are lost
	dropped := prod.Stats().Dropped
	require.Greater(t, dropped, uint64(300))
	runUntil(t, l, 10*time.Second, func() bool { return uint64(delivered) == prod.Stats().Written })
	// The kernel reports the loss with the next record that fits.
	emit(1)
	runUntil(t, l, 10*time.Second, func() bool { return uint64(delivered) == prod.Stats().Written })
	require.Equal(t, dropped, lost)
	require.Equal(t, dropped, p.Stats().Lost)
	closePipe(t, l, p)
}

// Close leaves nothing behind: the caller's map slots are emptied, the
// caller's descriptors stay open, the pipe's own maps are closed, and
// every later call is os.ErrClosed.
func TestCloseReleases(t *testing.T) {
	m := perfArray(t)
	ring := ringMap(t, 4096)
	l := newLoop(t)
	before := leakFDs()
	p := newPipe(t, l, Options{MaxLatency: time.Millisecond, Ordered: true})
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}))
	require.NoError(t, p.AttachRing(ring.FD()))
	_, err := p.CreatePerfArray(0)
	require.NoError(t, err)
	_, err = p.CreateRingBuf(4096)
	require.NoError(t, err)
	p.AttachSim(2)
	cpu := onlineCPUs(t)[0]
	_, err = m.LookupU32(uint32(cpu))
	require.NoError(t, err)
	closePipe(t, l, p)
	_, err = m.LookupU32(uint32(cpu))
	require.ErrorIs(t, err, unix.ENOENT)
	require.Equal(t, before, leakFDs())
	require.GreaterOrEqual(t, m.FD(), 0)
	_, err = unix.FcntlInt(uintptr(m.FD()), unix.F_GETFD, 0)
	require.NoError(t, err, "the caller's map descriptor is still open")

	require.ErrorIs(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}), os.ErrClosed)
	require.ErrorIs(t, p.AttachRing(ring.FD()), os.ErrClosed)
	_, err = p.CreatePerfArray(0)
	require.ErrorIs(t, err, os.ErrClosed)
	_, err = p.CreateRingBuf(4096)
	require.ErrorIs(t, err, os.ErrClosed)
	require.ErrorIs(t, p.AttachSim(1).Emit(0, 0, nil), os.ErrClosed)
	p.Close(nil) // a second Close does nothing
}

// The loop closing the pipe's handles (as Shutdown or a Walk would) ends
// the pipe as its Close would.
func TestClosedFromOutside(t *testing.T) {
	m := perfArray(t)
	l, err := newLoopNoCleanup()
	require.NoError(t, err)
	p := newPipe(t, l, Options{MaxLatency: time.Millisecond})
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}))
	_, err = p.CreateRingBuf(4096)
	require.NoError(t, err)
	cpu := onlineCPUs(t)[0]
	_, err = m.LookupU32(uint32(cpu))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.True(t, p.closed)
	_, err = m.LookupU32(uint32(cpu))
	require.ErrorIs(t, err, unix.ENOENT)
}

func TestNewBadInput(t *testing.T) {
	l := newLoop(t)
	_, err := New(nil, Options{})
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = New(l, Options{MaxLatency: -1})
	require.ErrorIs(t, err, unix.EINVAL)
	_, err = New(l, Options{ReorderWindow: -1})
	require.ErrorIs(t, err, unix.EINVAL)
	p := newPipe(t, l, Options{})
	_, err = p.CreateRingBuf(-1)
	require.ErrorIs(t, err, unix.EINVAL)
	err = p.AttachRing(-1)
	require.True(t, errors.Is(err, unix.EBADF), "got %v", err)
	require.ErrorIs(t, p.AttachSim(0).Emit(0, 0, nil), unix.EINVAL)
	closePipe(t, l, p)
}

// Closing any one of the pipe's handles from outside (as a function given
// to Walk would) ends the whole pipe: readers closed, map slots emptied,
// the pipe's maps closed.
func TestPartClosedEndsPipe(t *testing.T) {
	m := perfArray(t)
	cpu := onlineCPUs(t)[0]
	for _, part := range []string{"watcher", "kick", "tick", "check"} {
		l := newLoop(t)
		before := leakFDs()
		p := newPipe(t, l, Options{MaxLatency: time.Millisecond})
		require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{}))
		_, err := p.CreateRingBuf(4096)
		require.NoError(t, err)
		_, err = m.LookupU32(uint32(cpu))
		require.NoError(t, err)
		switch part {
		case "watcher":
			p.rings[0].w.Close(nil)
		case "kick":
			p.kick.Close(nil)
		case "tick":
			p.tick.Close(nil)
		case "check":
			p.check.Close(nil)
		}
		runUntil(t, l, 5*time.Second, func() bool { return p.closed })
		_, err = m.LookupU32(uint32(cpu))
		require.ErrorIs(t, err, unix.ENOENT, part)
		runFor(t, l, 5*time.Millisecond)
		require.Equal(t, before, leakFDs(), part)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		require.NoError(t, l.Run(ctx), "%s: nothing of the pipe keeps the loop alive", part)
		cancel()
	}
}

// A handler may close the pipe: no record is delivered after that, and
// everything is released, ordered or not.
func TestCloseFromHandler(t *testing.T) {
	m := perfArray(t)
	cpu := onlineCPUs(t)[0]
	for _, ordered := range []bool{false, true} {
		l := newLoop(t)
		prod := perfProducer(t, m, 16)
		snap := leakcheck.Take()
		p := newPipe(t, l, Options{Ordered: ordered, ReorderWindow: time.Nanosecond})
		got := 0
		closed := false
		cat := p.Register(func(Event) {
			got++
			p.Close(func() { closed = true })
		})
		require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{CPUs: []int{cpu}}))
		sim := p.AttachSim(1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			pinCPU(t, cpu)
			buf := make([]byte, 16)
			for i := range 5 {
				if err := prod.Emit(rec(buf, cat, 0, uint32(i))); err != nil {
					t.Error(err)
				}
			}
		}()
		<-done
		require.NoError(t, sim.Emit(0, cat, nil))
		runUntil(t, l, 5*time.Second, func() bool { return closed })
		require.Equal(t, 1, got)
		require.Equal(t, uint64(1), p.Stats().Delivered)
		require.Empty(t, snap.Diff(time.Second), "ordered %v", ordered)
		_, err := m.LookupU32(uint32(cpu))
		require.ErrorIs(t, err, unix.ENOENT)
	}
}
