package reliability

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

var (
	soakFlag         = flag.Bool("soak", false, "run TestSoak for its full duration (as EVENTPIPE_SOAK=1 does)")
	soakDurationFlag = flag.Duration("soak.duration", 0, "load phase of the full soak (default 25s, or EVENTPIPE_SOAK_DURATION)")
)

// soakDuration is how long TestSoak keeps the loop under load: about two
// seconds in the normal suite; with EVENTPIPE_SOAK=1 or -soak,
// EVENTPIPE_SOAK_DURATION or -soak.duration, by default 25 seconds.
func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if !*soakFlag && os.Getenv("EVENTPIPE_SOAK") != "1" {
		return 2 * time.Second
	}
	if *soakDurationFlag > 0 {
		return *soakDurationFlag
	}
	if s := os.Getenv("EVENTPIPE_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "EVENTPIPE_SOAK_DURATION")
		require.Greater(t, d, time.Duration(0), "EVENTPIPE_SOAK_DURATION")
		return d
	}
	return 25 * time.Second
}

// The soak's shape.
const (
	soakPosters     = 8
	soakPostWindow  = 256 // posts a poster may have queued and not yet run
	soakTimers      = 1000
	soakPairs       = 256
	soakChunk       = 64 // bytes per socket write
	soakChunks      = 4  // chunks in flight per pair
	soakRecord      = 64 // bytes per BPF record
	soakPerfPages   = 64 // per CPU: 256 KiB rings (EVENTPIPE_SOAK_PERF_PAGES)
	soakRingSize    = 1 << 20
	soakEmitBurst   = 16 // records per emitter burst, one burst per millisecond (EVENTPIPE_SOAK_EMIT_BURST)
	soakWorkEvery   = 2 * time.Millisecond
	soakWorkers     = 4
	soakHeapSlack   = 2 << 20 // absolute heap tolerance, on top of the relative one
	soakHeapGrowthD = 4       // relative heap tolerance: 1/soakHeapGrowthD of the first sample
)

// soakKnob returns the positive integer in environment variable name, or
// def. The perf knobs let a run shrink the rings and raise the emit rate
// until the kernel drops records, to exercise the loss accounting.
func soakKnob(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, name)
	require.Greater(t, n, 0, name)
	return n
}

// soakSample is the process state at the end of a quarter of the load.
type soakSample struct {
	at         time.Duration
	fds        int
	goroutines int
	heapInuse  uint64
	rss        uint64
	posts      uint64
	ticks      uint64
	bytes      uint64
	perf, ring uint64
}

func takeSoakSample(at time.Duration, c *soakCounters) soakSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return soakSample{
		at:         at,
		fds:        leakcheck.FDCount(),
		goroutines: runtime.NumGoroutine(),
		heapInuse:  ms.HeapInuse,
		rss:        rss(),
		posts:      c.posts.Load(),
		ticks:      c.ticks.Load(),
		bytes:      c.bytes.Load(),
		perf:       c.perf.Load(),
		ring:       c.ring.Load(),
	}
}

// rss is the resident set size from /proc/self/statm.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// soakCounters are progress counts the sampler reads while the loop runs.
type soakCounters struct {
	posts, ticks, bytes, perf, ring atomic.Uint64
}

// soakPair is one socketpair playing ping-pong on the loop: end a writes
// chunks of a known byte stream, end b echoes what it reads, a checks the
// echo and writes another chunk for each one that came back.
type soakPair struct {
	idx                        int
	fds                        *[2]int
	wa, wb                     *loop.Watcher
	sent, recvB, echoed, recvA uint64
}

// soakByte is byte pos of pair idx's stream.
func soakByte(idx int, pos uint64) byte { return byte(pos*7 + uint64(idx)) }

// One loop under sustained load from every source at once: 8 goroutines
// posting (each with at most 256 posts queued), 1000 timers re-arming
// themselves from their callbacks with periods of 5-50ms, 256 socketpairs
// playing ping-pong through watchers, a worker-pool item every 2ms, and a
// perf event array and a BPF ring buffer that the kernel fills from two
// emitting goroutines, read by a PerfReader (through a Dispatcher) and a
// RingReader watched on the loop. Nothing is lost: every post runs once and
// in order, every timer arm fires once and never early, every byte comes
// back intact, every record is delivered once and in order or (perf only)
// reported lost by the kernel, so that delivered + lost == emitted. Stream
// connections open, echo and end at random on the same loop
// (soak_stream_test.go). Nothing
// grows: descriptors and goroutines are the same at the end of the first
// and the last quarter of the load, and the heap in use (after a GC) within
// a quarter of its first-quarter size plus 2 MiB.
func TestSoak(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	load := soakDuration(t)
	var c soakCounters

	l := newLoop(t, loop.WithWorkers(soakWorkers))
	// The pool starts workers as work piles up; start them all now, so
	// that the goroutine count under load is fixed from the first quarter.
	var warm sync.WaitGroup
	warm.Add(soakWorkers)
	for range soakWorkers {
		_, err := l.QueueWork(func() { warm.Done(); warm.Wait() }, nil)
		require.NoError(t, err)
	}
	streams := startSoakStreams(t, l) // soak_stream_test.go

	// Posters.
	stopLoad := make(chan struct{})
	var producers sync.WaitGroup
	var posted [soakPosters]atomic.Uint64
	var nextPost [soakPosters]uint64 // loop-owned
	postOrderErr := 0
	for p := range soakPosters {
		tokens := make(chan struct{}, soakPostWindow)
		for range soakPostWindow {
			tokens <- struct{}{}
		}
		producers.Add(1)
		go func() {
			defer producers.Done()
			for seq := uint64(0); ; seq++ {
				select {
				case <-stopLoad:
					return
				case <-tokens:
				}
				err := l.Post(func() {
					if nextPost[p] != seq {
						postOrderErr++
					}
					nextPost[p] = seq + 1
					c.posts.Add(1)
					tokens <- struct{}{}
				})
				if err != nil {
					t.Errorf("poster %d: %v", p, err)
					return
				}
				posted[p].Add(1)
			}
		}()
	}

	// Timers.
	stopping := false // loop-owned: set by the finish task
	timers := make([]*loop.Timer, soakTimers)
	armed := make([]uint64, soakTimers)
	fired := make([]uint64, soakTimers)
	armedAt := make([]time.Time, soakTimers)
	early := 0
	var lateness [40]uint64 // log2 buckets of lateness in microseconds
	for i := range timers {
		period := time.Duration(5+i%46) * time.Millisecond
		timers[i] = l.NewTimer(func() {
			fired[i]++
			c.ticks.Add(1)
			late := l.Now().Sub(armedAt[i]) - period
			if late < 0 {
				early++
			}
			lateness[min(bitLen(uint64(late/time.Microsecond)), len(lateness)-1)]++
			if !stopping {
				armedAt[i] = l.Now()
				armed[i]++
				if err := timers[i].Start(period, 0); err != nil {
					t.Errorf("re-arm timer %d: %v", i, err)
				}
			}
		})
		armedAt[i] = l.Now()
		armed[i]++
		require.NoError(t, timers[i].Start(period, 0))
	}

	// Socket pairs.
	pairs := make([]*soakPair, soakPairs)
	var scratch [4096]byte
	var expect [4096]byte
	idle := 0
	sockErr := 0
	closePairs := func() {
		for _, p := range pairs {
			p.wa.Close(nil)
			p.wb.Close(nil)
		}
	}
	sendChunk := func(p *soakPair) {
		var chunk [soakChunk]byte
		for k := range chunk {
			chunk[k] = soakByte(p.idx, p.sent+uint64(k))
		}
		n, err := unix.Write(p.fds[0], chunk[:])
		if err != nil || n != len(chunk) {
			sockErr++
			t.Errorf("pair %d: write %d: %v", p.idx, n, err)
			return
		}
		p.sent += uint64(n)
	}
	// check compares what was read from pair p at stream position pos.
	check := func(p *soakPair, got []byte, pos uint64) bool {
		for k := range got {
			expect[k] = soakByte(p.idx, pos+uint64(k))
		}
		if !bytes.Equal(got, expect[:len(got)]) {
			sockErr++
			t.Errorf("pair %d: corrupt bytes at %d", p.idx, pos)
			return false
		}
		return true
	}
	for i := range pairs {
		p := &soakPair{idx: i, fds: socketPair(t)}
		pairs[i] = p
		var err error
		p.wb, err = l.Watch(p.fds[1], poller.Readable, func(poller.Events) {
			n, err := unix.Read(p.fds[1], scratch[:])
			if err == unix.EAGAIN || n <= 0 {
				return
			}
			if !check(p, scratch[:n], p.recvB) {
				return
			}
			p.recvB += uint64(n)
			w, err := unix.Write(p.fds[1], scratch[:n])
			if err != nil || w != n {
				sockErr++
				t.Errorf("pair %d: echo %d of %d: %v", p.idx, w, n, err)
				return
			}
			p.echoed += uint64(w)
		})
		require.NoError(t, err)
		p.wa, err = l.Watch(p.fds[0], poller.Readable, func(poller.Events) {
			n, err := unix.Read(p.fds[0], scratch[:])
			if err == unix.EAGAIN || n <= 0 {
				return
			}
			if !check(p, scratch[:n], p.recvA) {
				return
			}
			before := p.recvA / soakChunk
			p.recvA += uint64(n)
			c.bytes.Add(uint64(n))
			if stopping {
				if p.recvA == p.sent {
					if idle++; idle == len(pairs) {
						closePairs()
					}
				}
				return
			}
			for range p.recvA/soakChunk - before {
				sendChunk(p)
			}
		})
		require.NoError(t, err)
		for range soakChunks {
			sendChunk(p)
		}
	}

	// Worker pool.
	workQueued, workDone := 0, 0
	workTimer := l.NewTimer(func() {
		_, err := l.QueueWork(func() {
			var x uint64
			for i := range 1000 {
				x += uint64(i)
			}
			_ = x
		}, func(err error) {
			if err != nil {
				t.Errorf("work: %v", err)
			}
			workDone++
		})
		if err != nil {
			t.Errorf("QueueWork: %v", err)
			return
		}
		workQueued++
	})
	require.NoError(t, workTimer.Start(soakWorkEvery, soakWorkEvery))

	// BPF rings: a perf event array read through a Dispatcher, and a ring
	// buffer.
	perfMap, err := bpftest.NewPerfEventArray(0)
	require.NoError(t, err)
	t.Cleanup(func() { perfMap.Close() })
	perfProd, err := bpftest.NewPerfProducer(perfMap, soakRecord)
	require.NoError(t, err)
	t.Cleanup(func() { perfProd.Close() })
	perfPages := soakKnob(t, "EVENTPIPE_SOAK_PERF_PAGES", soakPerfPages)
	emitBurst := soakKnob(t, "EVENTPIPE_SOAK_EMIT_BURST", soakEmitBurst)
	pr, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{PagesPerCPU: perfPages})
	require.NoError(t, err)
	t.Cleanup(func() { pr.Close() })

	ringMap, err := bpftest.NewRingBuf(soakRingSize)
	require.NoError(t, err)
	t.Cleanup(func() { ringMap.Close() })
	ringProd, err := bpftest.NewRingProducer(ringMap, soakRecord)
	require.NoError(t, err)
	t.Cleanup(func() { ringProd.Close() })
	rr, err := ringbuf.NewRingReader(ringMap.FD())
	require.NoError(t, err)
	t.Cleanup(func() { rr.Close() })

	// Perf records: u32 category (seq%2), u64 seq, then seq-derived bytes.
	// Per CPU they arrive in emit order; a CPU's ring may also report
	// records the kernel dropped when it was full.
	maxCPU := 0
	for _, cpu := range pr.CPUs() {
		maxCPU = max(maxCPU, cpu)
	}
	perfNext := make([]uint64, maxCPU+1) // lowest seq the CPU may deliver next
	var perfDelivered, perfLost uint64
	recErr := 0
	checkRecord := func(what string, payload []byte) (uint64, bool) {
		if len(payload) < soakRecord-4 {
			recErr++
			t.Errorf("%s: %d-byte record", what, len(payload))
			return 0, false
		}
		seq := binary.LittleEndian.Uint64(payload)
		for k := 8; k < soakRecord-4; k++ {
			if payload[k] != byte(seq+uint64(k)) {
				recErr++
				t.Errorf("%s: record %d corrupt at byte %d", what, seq, k)
				return 0, false
			}
		}
		return seq, true
	}
	d := ringbuf.NewDispatcher()
	for cat := range 2 {
		id := d.Register(func(cpu int, payload []byte) {
			seq, ok := checkRecord("perf", payload)
			if !ok {
				return
			}
			if seq%2 != uint64(cat) || seq < perfNext[cpu] {
				recErr++
				t.Errorf("perf CPU %d: record %d (category %d) after %d: repeated, reordered or misrouted", cpu, seq, cat, perfNext[cpu])
			}
			perfNext[cpu] = seq + 1
			perfDelivered++
			c.perf.Add(1)
		})
		require.EqualValues(t, cat, id)
	}
	perfHandler := ringbuf.Handler{Sample: d.Sample, Lost: func(_ int, n uint64) { perfLost += n }}
	consumeErr := 0
	consumePerf := func() {
		if _, err := pr.Consume(perfHandler); err != nil {
			consumeErr++
			t.Errorf("perf Consume: %v", err)
		}
	}
	// Ring records: u64 seq and seq-derived bytes; one emitter, so they
	// arrive in order, and a dropped emit is retried with the same seq.
	var ringNext uint64
	ringRecord := func(data []byte) {
		if len(data) != soakRecord {
			recErr++
			t.Errorf("ring: %d-byte record", len(data))
			return
		}
		seq := binary.LittleEndian.Uint64(data)
		for k := 8; k < soakRecord; k++ {
			if data[k] != byte(seq+uint64(k)) {
				recErr++
				t.Errorf("ring: record %d corrupt at byte %d", seq, k)
				return
			}
		}
		if seq != ringNext {
			recErr++
			t.Errorf("ring: record %d, want %d: lost, repeated or reordered", seq, ringNext)
		}
		ringNext = seq + 1
		c.ring.Add(1)
	}
	consumeRing := func() {
		if _, err := rr.Consume(ringRecord); err != nil {
			consumeErr++
			t.Errorf("ring Consume: %v", err)
		}
	}
	perfW, err := l.Watch(pr.Fd(), poller.Readable, func(poller.Events) { consumePerf() })
	require.NoError(t, err)
	ringW, err := l.Watch(rr.Fd(), poller.Readable, func(poller.Events) { consumeRing() })
	require.NoError(t, err)

	var perfEmitted, ringEmitted, ringDropped atomic.Uint64
	perfPayload := func(buf []byte, seq uint64) []byte {
		binary.LittleEndian.PutUint32(buf, uint32(seq%2))
		binary.LittleEndian.PutUint64(buf[4:], seq)
		for k := 8; k < soakRecord-4; k++ {
			buf[4+k] = byte(seq + uint64(k))
		}
		return buf
	}
	producers.Add(2)
	go func() {
		defer producers.Done()
		buf := make([]byte, soakRecord)
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			for range emitBurst {
				if err := perfProd.Emit(perfPayload(buf, perfEmitted.Load())); err != nil {
					t.Errorf("perf emit: %v", err)
					return
				}
				perfEmitted.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer producers.Done()
		buf := make([]byte, soakRecord)
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			for range emitBurst {
				seq := ringEmitted.Load()
				binary.LittleEndian.PutUint64(buf, seq)
				for k := 8; k < soakRecord; k++ {
					buf[k] = byte(seq + uint64(k))
				}
				ok, err := ringProd.TryEmit(buf)
				if err != nil {
					t.Errorf("ring emit: %v", err)
					return
				}
				if ok {
					ringEmitted.Add(1)
				} else {
					ringDropped.Add(1) // full: the same seq goes again
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()

	dg := startSoakDgram(t, l) // datagrams: soak_dgram_test.go

	// Async handle, sent by the posters' peer: counts must match up.
	asyncRuns := 0
	async, err := l.NewAsync(func() { asyncRuns++ })
	require.NoError(t, err)

	// The sampler ends the load, then the finish task winds everything
	// down on the loop so that Run returns on its own.
	var samples [4]soakSample
	finishDone := make(chan struct{})
	outstanding := 0
	flushes := 0
	finish := func() {
		stopping = true
		for _, tm := range timers {
			if tm.IsActive() {
				outstanding++
			}
			tm.Close(nil)
		}
		workTimer.Close(nil)
		async.Close(nil)
		// Everything emitted is in the rings now: drain them. The kernel
		// reports a perf loss only ahead of the next record that fits,
		// so while losses are unreported, emit one more on every CPU.
		consumeRing()
		consumePerf()
		for flushes < 5 && perfProd.Stats().Dropped != perfLost {
			flushes++
			buf := make([]byte, soakRecord)
			for _, cpu := range pr.CPUs() {
				onCPU(t, cpu, func() {
					if err := perfProd.Emit(perfPayload(buf, perfEmitted.Load())); err != nil {
						t.Errorf("perf flush emit: %v", err)
					}
					perfEmitted.Add(1)
				})
			}
			consumePerf()
		}
		perfW.Close(nil)
		ringW.Close(nil)
		dg.finish()
		streams.finish()
		close(finishDone)
	}
	sendStop := make(chan struct{})
	var asyncSends atomic.Uint64
	go func() {
		for {
			select {
			case <-sendStop:
				return
			case <-time.After(time.Millisecond):
			}
			if err := async.Send(); err != nil {
				t.Errorf("async Send: %v", err)
				return
			}
			asyncSends.Add(1)
		}
	}()
	go func() {
		start := time.Now()
		for q := range samples {
			time.Sleep(time.Until(start.Add(time.Duration(q+1) * load / 4)))
			streams.pause()
			samples[q] = takeSoakSample(time.Since(start), &c)
			streams.resume()
		}
		close(sendStop)
		close(stopLoad)
		producers.Wait()
		if err := l.Post(finish); err != nil {
			t.Errorf("post finish: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), load+time.Minute)
	defer cancel()
	runStart := time.Now()
	require.NoError(t, l.Run(ctx))
	elapsed := time.Since(runStart)
	recv(t, finishDone, "finish")
	stats := l.Stats()
	streams.check(t)

	// Posts: every one ran, once, in order.
	var totalPosts uint64
	for p := range soakPosters {
		require.Equal(t, posted[p].Load(), nextPost[p], "poster %d: posts run", p)
		totalPosts += nextPost[p]
	}
	require.Zero(t, postOrderErr, "posts run out of order")
	// Timers: each arm fired once, or was outstanding when they were
	// closed; none early.
	var totalArmed, totalFired uint64
	for i := range timers {
		totalArmed += armed[i]
		totalFired += fired[i]
	}
	require.Equal(t, totalArmed, totalFired+uint64(outstanding), "timer arms = fires + outstanding")
	require.Zero(t, early, "timers fired early")
	// Sockets: every byte written came back, intact.
	require.Zero(t, sockErr)
	var totalBytes uint64
	for _, p := range pairs {
		require.Equal(t, p.sent, p.recvB, "pair %d: bytes b read", p.idx)
		require.Equal(t, p.sent, p.echoed, "pair %d: bytes b echoed", p.idx)
		require.Equal(t, p.sent, p.recvA, "pair %d: bytes a read back", p.idx)
		totalBytes += p.sent
	}
	require.Equal(t, len(pairs), idle, "pairs that finished")
	dg.check(t)
	// Work: every item queued completed.
	require.Equal(t, workQueued, workDone)
	// Async: ran, and no more often than sent.
	require.Greater(t, asyncRuns, 0)
	require.LessOrEqual(t, uint64(asyncRuns), asyncSends.Load())
	// Rings.
	require.Zero(t, consumeErr)
	require.Zero(t, recErr)
	ps := perfProd.Stats()
	require.Equal(t, perfEmitted.Load(), ps.Written+ps.Dropped, "perf emits the producer counted")
	require.Equal(t, perfEmitted.Load(), perfDelivered+perfLost, "perf: delivered + lost = emitted")
	require.Equal(t, ps.Written, perfDelivered, "perf: delivered = written by the kernel")
	require.Equal(t, ps.Dropped, perfLost, "perf: reported lost = dropped by the kernel")
	require.Equal(t, pr.Stats().Resyncs, uint64(0))
	ds := d.Stats()
	require.Equal(t, perfDelivered, ds.Dispatched)
	require.Zero(t, ds.Short+ds.Unknown)
	rs := ringProd.Stats()
	require.Equal(t, ringEmitted.Load(), rs.Written, "ring records written")
	require.Equal(t, ringDropped.Load(), rs.Dropped, "ring emits refused (full)")
	require.Equal(t, ringEmitted.Load(), ringNext, "ring: every record written delivered, in order")
	require.Equal(t, rr.Stats().Resyncs, uint64(0))

	// Growth between the end of the first and of the last quarter.
	first, last := samples[0], samples[3]
	for q, s := range samples {
		t.Logf("quarter %d at %v: fds %d, goroutines %d, heap in use %.1f MiB, RSS %.1f MiB; so far: %d posts, %d timer fires, %d bytes echoed, %d perf + %d ring records",
			q+1, s.at.Round(time.Millisecond), s.fds, s.goroutines, float64(s.heapInuse)/(1<<20), float64(s.rss)/(1<<20), s.posts, s.ticks, s.bytes, s.perf, s.ring)
	}
	require.Equal(t, first.fds, last.fds, "descriptors grew under load")
	require.Equal(t, first.goroutines, last.goroutines, "goroutines grew under load")
	heapLimit := first.heapInuse + first.heapInuse/soakHeapGrowthD + soakHeapSlack
	require.LessOrEqual(t, last.heapInuse, heapLimit, "heap in use grew under load (first quarter %d bytes)", first.heapInuse)

	secs := elapsed.Seconds()
	var lat []string
	for b, n := range lateness {
		if n > 0 {
			lat = append(lat, fmt.Sprintf("<%dus:%d", 1<<b, n))
		}
	}
	t.Logf("figures: load %v (run %v): %d posts (%.0f/s), %d timer fires (%.0f/s, %d outstanding at close, 0 early), %d bytes echoed over %d pairs (%.1f MB/s each way), %d work items, %d async runs for %d sends, perf %d delivered + %d lost = %d emitted (%d flush rounds), ring %d delivered, %d emits refused while full; loop: %d polls, %d io callbacks, %d wakeup writes, %d tasks",
		load, elapsed.Round(time.Millisecond), totalPosts, float64(totalPosts)/secs, totalFired, float64(totalFired)/secs, outstanding,
		totalBytes, len(pairs), float64(totalBytes)/secs/1e6, workDone, asyncRuns, asyncSends.Load(),
		perfDelivered, perfLost, perfEmitted.Load(), flushes, ringNext, ringDropped.Load(),
		stats.Iterations, stats.EventsDispatched, stats.WakeupWrites, stats.TasksRun)
	t.Logf("figures: timer lateness histogram (loop clock): %s", strings.Join(lat, " "))
	t.Logf("figures: growth first->last quarter: fds %d->%d, goroutines %d->%d, heap in use %.1f->%.1f MiB (limit %.1f), RSS %.1f->%.1f MiB",
		first.fds, last.fds, first.goroutines, last.goroutines, float64(first.heapInuse)/(1<<20), float64(last.heapInuse)/(1<<20),
		float64(heapLimit)/(1<<20), float64(first.rss)/(1<<20), float64(last.rss)/(1<<20))
}

// bitLen is the number of bits needed to hold v.
func bitLen(v uint64) int {
	n := 0
	for v > 0 {
		n++
		v >>= 1
	}
	return n
}

// onCPU runs fn on a goroutine pinned to cpu and waits for it. The thread
// stays locked when the goroutine ends, so the runtime discards it rather
// than reuse a pinned thread.
func onCPU(t *testing.T, cpu int, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Errorf("pin to CPU %d: %v", cpu, err)
			return
		}
		fn()
	}()
	<-done
}
