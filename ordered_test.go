package eventpipe

import (
	"encoding/binary"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// Producers pinned to each CPU write at once; the ordered pipe delivers
// their records in global timestamp order, each CPU's in its own order, with
// Event.Time the kernel's CLOCK_MONOTONIC stamp.
func TestOrderedAcrossCPUs(t *testing.T) {
	m := perfArray(t)
	cpus := onlineCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs two CPUs")
	}
	l := newLoop(t)
	// A wide window: on a loaded machine a writer can be descheduled
	// between stamping a record and publishing it.
	p := newPipe(t, l, Options{Ordered: true, ReorderWindow: 200 * time.Millisecond})
	const perCPU = 400
	var last uint64
	backwards := 0
	nextSeq := map[int]uint32{}
	perCPUOrder := 0
	start := monoNow(t)
	switches, lastCPU := 0, -1
	p.Register(func(ev Event) {
		if ev.CPU != lastCPU {
			switches++
			lastCPU = ev.CPU
		}
		if ev.Time < last {
			backwards++
		}
		last = ev.Time
		seq := binary.LittleEndian.Uint32(ev.Payload[4:])
		if seq != nextSeq[ev.CPU] {
			perCPUOrder++
		}
		nextSeq[ev.CPU] = seq + 1
		if ev.Time < start {
			t.Errorf("time %d before the test started at %d", ev.Time, start)
		}
	})
	require.NoError(t, p.AttachPerf(m.FD(), ringbuf.PerfOptions{PagesPerCPU: 64}))
	prods := make([]*bpftest.Producer, len(cpus))
	for i := range cpus {
		prods[i] = perfProducer(t, m, 16)
	}
	var wg sync.WaitGroup
	for i, cpu := range cpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pinCPU(t, cpu)
			buf := make([]byte, 16)
			for seq := range uint32(perCPU) {
				if err := prods[i].Emit(rec(buf, 0, uint32(cpu), seq)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	total := uint64(perCPU * len(cpus))
	runUntil(t, l, 30*time.Second, func() bool { return p.Stats().Delivered == total })
	wg.Wait()
	t.Logf("the merged stream switched CPU %d times", switches)
	require.Zero(t, backwards, "delivered out of timestamp order")
	require.Zero(t, perCPUOrder, "a CPU's records were reordered")
	require.Zero(t, p.Stats().Late)
	require.LessOrEqual(t, last, monoNow(t))
	closePipe(t, l, p)
}

// Simulated: records of two CPUs are merged by time; a record waits for its
// window when another CPU has nothing yet; within a CPU a time going
// backwards is delivered in ring order and counted late, as is a record
// older than one already delivered.
func TestOrderedSim(t *testing.T) {
	l := newLoop(t)
	window := 30 * time.Millisecond
	p := newPipe(t, l, Options{Ordered: true, ReorderWindow: window})
	var times []uint64
	var cpus []int
	p.Register(func(ev Event) { times = append(times, ev.Time); cpus = append(cpus, ev.CPU) })
	sim := p.AttachSim(2)

	// Both CPUs hold records: merged at once, without waiting.
	require.NoError(t, sim.EmitAt(1, 300, 0, nil))
	require.NoError(t, sim.EmitAt(0, 100, 0, nil))
	require.NoError(t, sim.EmitAt(0, 200, 0, nil))
	require.NoError(t, sim.EmitAt(1, 400, 0, nil))
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 4 })
	require.Equal(t, []uint64{100, 200, 300, 400}, times)
	require.Equal(t, []int{0, 0, 1, 1}, cpus)
	require.Zero(t, p.Stats().Late)

	// One CPU only, stamped now: held about the window, then delivered.
	times = times[:0]
	emitted := time.Now()
	require.NoError(t, sim.Emit(0, 0, nil))
	runFor(t, l, window/3)
	require.Empty(t, times, "held while CPU 1 may still write something older")
	// CPU 1 writes an older record within the window: it goes first.
	now := p.clock.now()
	require.NoError(t, sim.EmitAt(1, now-uint64(window/2), 0, nil))
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 2 })
	require.GreaterOrEqual(t, time.Since(emitted), window/2)
	require.Less(t, times[0], times[1])
	require.Zero(t, p.Stats().Late)

	require.Equal(t, uint64(6), p.Stats().Delivered)
	closePipe(t, l, p)

	// Backwards within one CPU (a new pipe, nothing delivered yet): ring
	// order kept, the second counted late.
	p = newPipe(t, l, Options{Ordered: true, ReorderWindow: window})
	p.Register(func(ev Event) { times = append(times, ev.Time) })
	sim = p.AttachSim(2)
	times = times[:0]
	base := p.clock.now() - uint64(time.Second)
	require.NoError(t, sim.EmitAt(0, base+20, 0, nil))
	require.NoError(t, sim.EmitAt(0, base+10, 0, nil))
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 2 })
	require.Equal(t, []uint64{base + 20, base + 10}, times)
	require.Equal(t, uint64(1), p.Stats().Late)

	// Later than the window: delivered, counted, never dropped.
	times = times[:0]
	require.NoError(t, sim.EmitAt(1, base+5, 0, nil))
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 1 })
	require.Equal(t, uint64(2), p.Stats().Late)
	require.Equal(t, uint64(3), p.Stats().Delivered)
	closePipe(t, l, p)
}

// Two perf arrays written by producers pinned to each CPU and a simulated
// source stamped with the same clock, on one ordered pipe: one stream, in
// time order.
func TestOrderedAcrossSources(t *testing.T) {
	m1, m2 := perfArray(t), perfArray(t)
	cpus := onlineCPUs(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: true, ReorderWindow: 200 * time.Millisecond})
	var last uint64
	backwards, fromSim := 0, 0
	p.Register(func(ev Event) {
		if ev.Time < last {
			backwards++
		}
		last = ev.Time
		if binary.LittleEndian.Uint32(ev.Payload) == 99 {
			fromSim++
		}
	})
	opts := ringbuf.PerfOptions{PagesPerCPU: 64}
	require.NoError(t, p.AttachPerf(m1.FD(), opts))
	require.NoError(t, p.AttachPerf(m2.FD(), opts))
	sim := p.AttachSim(1)
	simTick := l.NewTimer(func() {
		if err := sim.Emit(0, 0, []byte{99, 0, 0, 0}); err != nil {
			t.Error(err)
		}
	})
	require.NoError(t, simTick.Start(0, time.Millisecond))

	const perProducer = 200
	var wg sync.WaitGroup
	for i, m := range []*bpftest.Map{m1, m2} {
		for _, cpu := range cpus {
			prod := perfProducer(t, m, 16)
			wg.Add(1)
			go func() {
				defer wg.Done()
				pinCPU(t, cpu)
				buf := make([]byte, 16)
				for seq := range uint32(perProducer) {
					if err := prod.Emit(rec(buf, 0, uint32(i), seq)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	want := uint64(2 * len(cpus) * perProducer)
	runUntil(t, l, 30*time.Second, func() bool { return p.Stats().Delivered-uint64(fromSim) == want })
	wg.Wait()
	simTick.Close(nil)
	t.Logf("%d kernel records and %d simulated ones", want, fromSim)
	require.Positive(t, fromSim)
	require.Zero(t, backwards)
	require.Zero(t, p.Stats().Late)
	closePipe(t, l, p)
}

// A handler that panics ends the loop's pass with the panic; its record
// counts as delivered (it does not come back), and the next pass delivers
// the rest, ordered or not.
func TestHandlerPanic(t *testing.T) {
	for _, ordered := range []bool{false, true} {
		l := newLoop(t)
		p := newPipe(t, l, Options{Ordered: ordered})
		var got []byte
		panicOn, want := byte(3), []byte{1, 3, 2, 4} // ring 0, then ring 1
		if ordered {
			panicOn, want = 2, []byte{1, 2, 3, 4} // by time
		}
		p.Register(func(ev Event) {
			got = append(got, ev.Payload[0])
			if ev.Payload[0] == panicOn {
				panic("handler")
			}
		})
		sim := p.AttachSim(2)
		for i := range uint64(4) {
			require.NoError(t, sim.EmitAt(int(i%2), i+1, 0, []byte{byte(i + 1)}))
		}
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = l.RunOnce()
		}
		var pe *loop.PanicError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, want[:len(got)], got)
		require.Equal(t, panicOn, got[len(got)-1])
		require.Equal(t, uint64(len(got)), p.Stats().Delivered, "counted, also the panicking handler's record")
		runUntil(t, l, 5*time.Second, func() bool { return len(got) == 4 })
		require.Equal(t, want, got, "ordered %v", ordered)
		closePipe(t, l, p)
	}
}

// A handler may attach a source while the merge runs (the merge keeps every
// ring's head in one slice, which grows then): the running merge goes on
// with the sources it claimed, in order, and the new source's records are
// merged from the next pass on (late, here, as they are older).
func TestOrderedAttachInHandler(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: true})
	var times []uint64
	var later *Sim
	p.Register(func(ev Event) {
		times = append(times, ev.Time)
		if later == nil {
			later = p.AttachSim(3)
			for cpu := range 3 {
				require.NoError(t, later.EmitAt(cpu, 25+uint64(cpu), 0, nil))
			}
		}
	})
	sim := p.AttachSim(2)
	for i := range uint64(4) {
		require.NoError(t, sim.EmitAt(int(i%2), 10*(i+1), 0, nil))
	}
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 7 })
	require.Equal(t, []uint64{10, 20, 30, 40, 25, 26, 27}, times)
	require.Equal(t, uint64(3), p.Stats().Late)
	require.Equal(t, uint64(7), p.Stats().Delivered)
	closePipe(t, l, p)
}

// Bursts: each CPU's records go out in runs, one reader call per run rather
// than one per record, and the promises hold inside a run: time order
// across CPUs, ring order within one (a time going backwards inside a run
// is delivered in place and counted late), lost records reported.
func TestOrderedRuns(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: true})
	var times []uint64
	var cpus []int
	p.Register(func(ev Event) { times = append(times, ev.Time); cpus = append(cpus, ev.CPU) })
	lost := uint64(0)
	p.OnLost(func(cpu int, n uint64) {
		require.Equal(t, 0, cpu)
		lost += n
	})
	sim := p.AttachSim(2)
	base := p.clock.now() - uint64(time.Second) // older than the window
	var want []uint64
	emit := func(cpu int, from, to uint64) {
		for i := from; i <= to; i++ {
			at := base + i
			if i == 25 {
				at = base + 3 // backwards, inside CPU 0's first burst
			}
			require.NoError(t, sim.EmitAt(cpu, at, 0, nil))
			if i == 30 || i == 130 {
				require.NoError(t, sim.Lose(cpu, 4))
			}
		}
	}
	emit(0, 1, 50)
	emit(1, 51, 100)
	emit(0, 101, 150)
	for i := uint64(1); i <= 150; i++ {
		want = append(want, base+map[bool]uint64{true: 3, false: i}[i == 25])
	}
	calls := p.ReaderCalls()
	runUntil(t, l, 5*time.Second, func() bool { return len(times) == 150 })
	require.Equal(t, want, times)
	for i, cpu := range cpus {
		require.Equal(t, map[bool]int{true: 1, false: 0}[i >= 50 && i < 100], cpu, "record %d", i)
	}
	require.Equal(t, uint64(1), p.Stats().Late)
	require.Equal(t, uint64(150), p.Stats().Delivered)
	require.Equal(t, uint64(8), lost, "one lost record in each of CPU 0's bursts")
	require.Equal(t, uint64(8), p.Stats().Lost)
	require.Less(t, p.ReaderCalls()-calls, uint64(20), "three bursts, not 150 records, of reader calls")
	closePipe(t, l, p)
}

// Many rings on the merge's heap, of two sources: records whose times
// interleave the rings at random (equal times included, on different
// rings) come out in time order, each once, with each ring's order kept,
// and the reader is called per window of records, not per record.
func TestOrderedManyRings(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: true})
	type rec struct {
		at  uint64
		cpu int
		sim int
		seq uint32
	}
	var got []rec
	p.Register(func(ev Event) {
		got = append(got, rec{ev.Time, ev.CPU, int(ev.Payload[0]), binary.LittleEndian.Uint32(ev.Payload[4:])})
	})
	sims := []*Sim{p.AttachSim(7), p.AttachSim(4)}
	rng := rand.New(rand.NewPCG(1, 2))
	base := p.clock.now() - uint64(time.Second) // older than the window
	const records = 2000
	at := base
	seqs := map[[2]int]uint32{} // (sim, cpu) -> next sequence number
	for range records {
		if rng.IntN(4) != 0 {
			at++ // else the same time as the record before, on another ring
		}
		si := rng.IntN(len(sims))
		cpu := rng.IntN(map[int]int{0: 7, 1: 4}[si])
		key := [2]int{si, cpu}
		payload := binary.LittleEndian.AppendUint32([]byte{byte(si), 0, 0, 0}, seqs[key])
		seqs[key]++
		require.NoError(t, sims[si].EmitAt(cpu, at, 0, payload))
	}
	calls := p.ReaderCalls()
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == records })
	require.True(t, sort.SliceIsSorted(got, func(i, j int) bool { return got[i].at < got[j].at }), "time order")
	require.Zero(t, p.Stats().Late)
	next := map[[2]int]uint32{}
	for _, r := range got {
		key := [2]int{r.sim, r.cpu}
		require.Equal(t, next[key], r.seq, "record %+v out of its ring's order", r)
		next[key]++
	}
	require.Equal(t, seqs, next)
	// 11 rings, a window of up to mergeWindow records each: a PeekRun
	// and an AdvanceRun per window, and one more look at each ring that
	// ends empty, well below one call per record.
	require.Less(t, p.ReaderCalls()-calls, uint64(records/4))
	closePipe(t, l, p)
}

// The merge's window follows the records' pattern: bursts on one CPU are
// peeked a sample at a time (the ring's own loop reads the rest once),
// records alternating between CPUs a window at a time (a reader call per
// window, not per record), and each drain keeps time order whichever it
// finds.
func TestOrderedWindowAdapts(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{Ordered: true})
	var times []uint64
	p.Register(func(ev Event) { times = append(times, ev.Time) })
	sim := p.AttachSim(2)
	require.Equal(t, []int{1, 1}, p.MergeWants(), "a new ring starts at one sample")
	at := p.clock.now() - uint64(time.Second) // older than the window
	drain := func(records int, cpuOf func(i int) int) uint64 {
		t.Helper()
		times = times[:0]
		for i := range records {
			at++
			require.NoError(t, sim.EmitAt(cpuOf(i), at, 0, nil))
		}
		calls := p.ReaderCalls()
		runUntil(t, l, 5*time.Second, func() bool { return len(times) == records })
		require.True(t, sort.SliceIsSorted(times, func(i, j int) bool { return times[i] < times[j] }), "time order")
		return p.ReaderCalls() - calls
	}
	bursts := func(i int) int { return i / 50 % 2 }
	alternate := func(i int) int { return i % 2 }

	drain(200, bursts)
	require.Equal(t, []int{1, 1}, p.MergeWants(), "after bursts")
	calls := drain(200, alternate)
	require.Equal(t, []int{mergeWindow, mergeWindow}, p.MergeWants(), "after alternating records")
	require.Less(t, calls, uint64(200/4), "alternating records: reader calls per window, not per record")
	drain(200, bursts)
	require.Equal(t, []int{1, 1}, p.MergeWants(), "after bursts again")
	require.Zero(t, p.Stats().Late)
	closePipe(t, l, p)
}
