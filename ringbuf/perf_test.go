package ringbuf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// Tests against the kernel: the rings are filled by a BPF program calling
// bpf_perf_event_output, never by the test.

func newPerfReader(t testing.TB, m *bpftest.Map, opts PerfOptions) *PerfReader {
	t.Helper()
	r, err := NewPerfReader(m.FD(), opts)
	if err != nil {
		t.Fatalf("NewPerfReader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestPerfReaderSetup(t *testing.T) {
	m := newPerfArray(t)
	cpus := testCPUs(t)
	before := leakcheck.Take()
	mapsBefore := len(kernelMappings(t, "anon_inode:[perf_event]"))

	r, err := NewPerfReader(m.FD(), PerfOptions{PagesPerCPU: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.CPUs(); !slices.Equal(got, cpus) {
		t.Fatalf("CPUs() = %v, online %v", got, cpus)
	}
	// One read-write mapping of 1+2 pages per CPU.
	maps := kernelMappings(t, "anon_inode:[perf_event]")
	if len(maps)-mapsBefore != len(cpus) {
		t.Fatalf("%d perf mappings, want %d more than %d", len(maps), len(cpus), mapsBefore)
	}
	for i, mem := range r.mmaps {
		mp, ok := mappingOf(t, "anon_inode:[perf_event]", mem)
		if !ok || mp.size() != 3*os.Getpagesize() || mp.perms != "rw-s" || mp.offset != 0 {
			t.Fatalf("CPU %d mapped as %+v (found %v), want 3 pages rw-s", cpus[i], mp, ok)
		}
	}
	// A perf event per CPU, stored at key = CPU.
	for _, cpu := range cpus {
		if _, err := m.LookupU32(uint32(cpu)); err != nil {
			t.Errorf("slot %d: %v", cpu, err)
		}
	}
	if fd := r.Fd(); fd < 0 {
		t.Fatalf("Fd() = %d", fd)
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, cpu := range cpus {
		if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
			t.Errorf("slot %d after Close: %v, want ENOENT", cpu, err)
		}
	}
	if fd := r.Fd(); fd != -1 {
		t.Errorf("Fd() after Close = %d", fd)
	}
	if err := r.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Consume(Handler{}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Consume after Close: %v", err)
	}
	if _, err := r.Poll(0, Handler{}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	before.Check(t)
}

// TestPerfReaderRemovesOnlyItsEntries: a slot the reader did not fill is
// left alone by Close.
func TestPerfReaderRemovesOnlyItsEntries(t *testing.T) {
	m := newPerfArray(t)
	cpus := testCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs two online CPUs")
	}
	theirs, err := bpftest.OpenPerfEvent(cpus[0])
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(theirs)
	if err := m.UpdateU32(uint32(cpus[0]), uint32(theirs)); err != nil {
		t.Fatal(err)
	}
	r := newPerfReader(t, m, PerfOptions{CPUs: cpus[1:2]})
	if !slices.Equal(r.CPUs(), cpus[1:2]) {
		t.Fatalf("CPUs() = %v", r.CPUs())
	}
	if _, err := m.LookupU32(uint32(cpus[1])); err != nil {
		t.Fatalf("our slot: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LookupU32(uint32(cpus[0])); err != nil {
		t.Errorf("their slot after our Close: %v", err)
	}
	if _, err := m.LookupU32(uint32(cpus[1])); !errors.Is(err, unix.ENOENT) {
		t.Errorf("our slot after Close: %v, want ENOENT", err)
	}
}

func TestPerfReaderRejects(t *testing.T) {
	m := newPerfArray(t)
	ring := newRingMap(t, os.Getpagesize())
	arr, err := bpftest.NewArray(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	small, err := bpftest.NewPerfEventArray(1)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	page := os.Getpagesize()
	cases := []struct {
		name string
		fd   int
		opts PerfOptions
		want error
	}{
		{"pages not a power of two", m.FD(), PerfOptions{PagesPerCPU: 3}, unix.EINVAL},
		{"negative pages", m.FD(), PerfOptions{PagesPerCPU: -4}, unix.EINVAL},
		{"watermark as large as the ring", m.FD(), PerfOptions{PagesPerCPU: 2, Watermark: 2 * page}, unix.EINVAL},
		{"watermark larger than the ring", m.FD(), PerfOptions{PagesPerCPU: 1, Watermark: 3 * page}, unix.EINVAL},
		{"watermark and wakeup events", m.FD(), PerfOptions{WakeupEvents: 2, Watermark: 64}, unix.EINVAL},
		{"negative wakeup events", m.FD(), PerfOptions{WakeupEvents: -1}, unix.EINVAL},
		{"CPU listed twice", m.FD(), PerfOptions{CPUs: []int{0, 0}}, unix.EINVAL},
		{"negative CPU", m.FD(), PerfOptions{CPUs: []int{-1}}, unix.EINVAL},
		{"empty CPU list", m.FD(), PerfOptions{CPUs: []int{}}, unix.EINVAL},
		{"CPU beyond the array", small.FD(), PerfOptions{CPUs: []int{1}}, unix.E2BIG},
		{"array map", arr.FD(), PerfOptions{}, unix.EINVAL},
		{"ringbuf map", ring.FD(), PerfOptions{}, unix.EINVAL},
		{"not a descriptor", -1, PerfOptions{}, unix.EBADF},
		{"closed descriptor", closedFD(t), PerfOptions{}, unix.EBADF},
		{"not a map", nonMapFD(t), PerfOptions{}, unix.EINVAL},
	}
	before := leakcheck.Take()
	for _, c := range cases {
		r, err := NewPerfReader(c.fd, c.opts)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
		if r != nil {
			t.Errorf("%s: got a reader", c.name)
			r.Close()
		}
	}
	before.Check(t)
}

// TestPerfReaderExactlyOnceInOrder pushes records from every CPU through
// one-page rings over many rounds, so records wrap the ring's end at many
// offsets, and checks each arrives once, whole, in its CPU's order.
func TestPerfReaderExactlyOnceInOrder(t *testing.T) {
	m := newPerfArray(t)
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1})
	sizes := []int{61, 200, 8}
	var prods []*bpftest.Producer
	for _, n := range sizes {
		p, err := bpftest.NewPerfProducer(m, n)
		prods = append(prods, newProducer(t, p, err))
	}
	cpus := r.CPUs()
	next := map[int]int{} // per CPU: next sequence number expected
	sent := map[int]int{}
	ringOf := map[int]int{}
	for i, cpu := range cpus {
		ringOf[cpu] = i
	}
	wrapped := 0
	h := Handler{
		Sample: func(cpu int, data []byte) {
			seq := int(getU32(data[4:]))
			n := sizes[seq%len(sizes)]
			if len(data) != bpftest.PerfRawSize(n) {
				t.Fatalf("CPU %d record %d: %d bytes, want raw size %d", cpu, seq, len(data), bpftest.PerfRawSize(n))
			}
			if want := record(make([]byte, n), cpu, seq); !bytes.Equal(data[:n], want) {
				t.Fatalf("CPU %d record %d: got %x, want %x", cpu, seq, data[:n], want)
			}
			if seq != next[cpu] {
				t.Fatalf("CPU %d: record %d, want %d", cpu, seq, next[cpu])
			}
			next[cpu]++
			i := ringOf[cpu]
			switch {
			case within(data, r.mmaps[i]):
			case within(data, r.rings[i].scratch):
				wrapped++
			default:
				t.Fatalf("CPU %d record %d outside its ring and scratch buffer", cpu, seq)
			}
		},
		Lost: func(cpu int, n uint64) { t.Fatalf("CPU %d lost %d records", cpu, n) },
	}
	for round := 0; round < 30; round++ {
		for _, cpu := range cpus {
			emitOn(t, cpu, func() {
				buf := make([]byte, 256)
				// About 1.6 KiB per round: never fills a 4 KiB ring.
				for k := 0; k < 12; k++ {
					seq := sent[cpu]
					p := prods[seq%len(sizes)]
					if err := p.Emit(record(buf, cpu, seq)[:max(p.RecordSize(), 8)]); err != nil {
						t.Error(err)
						return
					}
					sent[cpu]++
				}
			})
		}
		if _, err := r.Consume(h); err != nil {
			t.Fatal(err)
		}
	}
	for _, cpu := range cpus {
		if next[cpu] != sent[cpu] {
			t.Errorf("CPU %d: %d of %d records delivered", cpu, next[cpu], sent[cpu])
		}
	}
	if wrapped == 0 {
		t.Error("no record wrapped the end of a ring")
	}
	if st := r.Stats(); st.Samples != uint64(sumValues(sent)) || st.Lost != 0 || st.Resyncs != 0 {
		t.Errorf("Stats = %+v, sent %d", st, sumValues(sent))
	}
}

func sumValues(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// emitOn runs fn on a goroutine pinned to cpu and waits for it.
func emitOn(t testing.TB, cpu int, fn func()) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pinCPU(t, cpu)
		fn()
	}()
	wg.Wait()
}

// TestPerfReaderLostExact overruns a one-page ring on purpose and checks the
// reader reports exactly the number of records the kernel dropped.
func TestPerfReaderLostExact(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}})
	p, err := bpftest.NewPerfProducer(m, 64)
	p = newProducer(t, p, err)

	var delivered, lost uint64
	h := Handler{
		Sample: func(c int, data []byte) {
			if c != cpu || int(getU32(data)) != cpu {
				t.Fatalf("sample from CPU %d", c)
			}
			delivered++
		},
		Lost: func(c int, n uint64) {
			if c != cpu {
				t.Fatalf("lost report from CPU %d", c)
			}
			lost += n
		},
	}
	const emitted = 300 // about 24 KiB into a 4 KiB ring
	emitOn(t, cpu, func() {
		buf := make([]byte, 64)
		for i := 0; i < emitted; i++ {
			if err := p.Emit(record(buf, cpu, i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	if _, err := r.Consume(h); err != nil {
		t.Fatal(err)
	}
	if delivered == 0 || delivered == emitted {
		t.Fatalf("delivered %d of %d: the ring did not overflow", delivered, emitted)
	}
	// The kernel writes PERF_RECORD_LOST ahead of the next record that fits.
	emitOn(t, cpu, func() {
		if err := p.Emit(record(make([]byte, 64), cpu, emitted)); err != nil {
			t.Error(err)
		}
	})
	if _, err := r.Consume(h); err != nil {
		t.Fatal(err)
	}
	if lost != emitted+1-delivered {
		t.Fatalf("lost %d, want emitted %d - delivered %d = %d", lost, emitted+1, delivered, emitted+1-delivered)
	}
	if st := p.Stats(); st.Dropped != lost || st.Written != delivered {
		t.Fatalf("producer saw %+v; reader delivered %d, lost %d", st, delivered, lost)
	}
	if st := r.Stats(); st.Lost != lost || st.Samples != delivered {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestPerfReaderWakeupEvents checks the reader's descriptor only becomes
// readable after WakeupEvents records, and that Poll drains all of them.
func TestPerfReaderWakeupEvents(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}, WakeupEvents: 4})
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	testWakeupAfter(t, r, p, cpu, 4)
}

// TestPerfReaderWatermark is TestPerfReaderWakeupEvents for a byte
// watermark: the kernel wakes the reader once more than Watermark bytes
// have been written.
func TestPerfReaderWatermark(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	const size = 40
	rec := bpftest.PerfRecordLen(size)
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}, Watermark: 2*rec + 1})
	p, err := bpftest.NewPerfProducer(m, size)
	p = newProducer(t, p, err)
	testWakeupAfter(t, r, p, cpu, 3)
}

// TestPerfReaderWatermarkCountsWrittenBytes: the watermark counts bytes
// written since the last wakeup point, not bytes pending, so records the
// reader consumed before the wakeup still count towards it.
func TestPerfReaderWatermarkCountsWrittenBytes(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	const size = 40
	rec := bpftest.PerfRecordLen(size)
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 1, CPUs: []int{cpu}, Watermark: 2*rec + 1})
	p, err := bpftest.NewPerfProducer(m, size)
	p = newProducer(t, p, err)
	emitSeq(t, p, cpu, 0, 2)
	if fdReadable(t, r.Fd()) {
		t.Fatal("woken below the watermark")
	}
	if n, err := r.Consume(Handler{}); n != 2 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	// One record pending, three written: past the watermark.
	emitSeq(t, p, cpu, 2, 3)
	if n, err := r.Poll(time.Minute, Handler{}); n != 1 || err != nil {
		t.Fatalf("Poll after the third record = %d, %v; want a wakeup for 1 pending record", n, err)
	}
}

func testWakeupAfter(t *testing.T, r *PerfReader, p *bpftest.Producer, cpu, n int) {
	t.Helper()
	got := 0
	h := Handler{Sample: func(int, []byte) { got++ }}
	buf := make([]byte, p.RecordSize())
	for i := 0; i < n; i++ {
		// Before the threshold no wakeup exists: Fd is not readable,
		// while Pending, which reads the positions, sees the records.
		if fdReadable(t, r.Fd()) || r.Pending() != (i > 0) {
			t.Fatalf("after %d records: Fd readable %v, Pending %v", i, fdReadable(t, r.Fd()), r.Pending())
		}
		emitOn(t, cpu, func() {
			if err := p.Emit(buf); err != nil {
				t.Error(err)
			}
		})
	}
	waitReadable(t, r.Fd())
	if k, err := r.Consume(h); k != n || err != nil || got != n {
		t.Fatalf("Consume after %d records = %d, %v (delivered %d)", n, k, err, got)
	}
	if r.Pending() {
		t.Fatal("Pending after Consume drained everything")
	}
	if k, err := r.Poll(0, h); k != 0 || err != nil {
		t.Fatalf("Poll with nothing pending = %d, %v", k, err)
	}
}

func TestPerfReaderPollDelivers(t *testing.T) {
	m := newPerfArray(t)
	r := newPerfReader(t, m, PerfOptions{})
	p, err := bpftest.NewPerfProducer(m, 32)
	p = newProducer(t, p, err)
	if n, err := r.Poll(0, Handler{}); n != 0 || err != nil {
		t.Fatalf("Poll on empty rings = %d, %v", n, err)
	}
	for _, cpu := range r.CPUs() {
		emitOn(t, cpu, func() {
			if err := p.Emit(record(make([]byte, 32), cpu, 1)); err != nil {
				t.Error(err)
			}
		})
	}
	seen := map[int]bool{}
	for len(seen) < len(r.CPUs()) {
		if _, err := r.Poll(-1, Handler{Sample: func(cpu int, d []byte) {
			if int(getU32(d)) != cpu || seen[cpu] {
				t.Fatalf("record for CPU %d delivered on CPU %d (seen %v)", getU32(d), cpu, seen)
			}
			seen[cpu] = true
		}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPerfReaderCloseWakesPoll(t *testing.T) {
	m := newPerfArray(t)
	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Poll(-1, Handler{})
		done <- err
	}()
	// Close either finds Poll blocked (and wakes it) or runs before it
	// starts (and Poll refuses); both must end with ErrClosed, no hang.
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
	before.Check(t)
}

func TestPerfReaderCloseFromHandler(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpftest.NewPerfProducer(m, 8)
	if err != nil {
		t.Fatal(err)
	}
	emitOn(t, cpu, func() {
		for i := 0; i < 3; i++ {
			if err := p.Emit(record(make([]byte, 8), cpu, i)); err != nil {
				t.Error(err)
			}
		}
	})
	p.Close()
	calls := 0
	var nested error
	n, err := r.Consume(Handler{Sample: func(int, []byte) {
		calls++
		_, nested = r.Consume(Handler{})
		if err := r.Close(); err != nil {
			t.Errorf("Close from handler: %v", err)
		}
	}})
	if !errors.Is(nested, unix.EBUSY) {
		t.Errorf("Consume from a handler: %v", nested)
	}
	if calls != 1 || n != 1 || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Consume = %d, %v after %d calls; want 1 record then ErrClosed", n, err, calls)
	}
	if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot after Close: %v", err)
	}
	before.Check(t)
}

func TestPerfReaderConsumeAllocatesNothing(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	r := newPerfReader(t, m, PerfOptions{PagesPerCPU: 2, CPUs: []int{cpu}})
	p, err := bpftest.NewPerfProducer(m, 64)
	p = newProducer(t, p, err)
	const batch = 32
	buf := make([]byte, 64)
	total := 0
	h := Handler{Sample: func(_ int, d []byte) { total += len(d) }, Lost: func(int, uint64) {}}
	// Emitting allocates nothing either (bpftest promises it; checked here
	// so the figure below is the reader's alone).
	var allocs, emitAllocs float64
	emitOn(t, cpu, func() {
		emitAllocs = testing.AllocsPerRun(10, func() { p.Emit(buf) })
		r.Consume(h)
		total = 0
		allocs = testing.AllocsPerRun(50, func() {
			for i := 0; i < batch; i++ {
				if err := p.Emit(buf); err != nil {
					t.Error(err)
				}
			}
			if n, err := r.Consume(h); n != batch || err != nil {
				t.Errorf("Consume = %d, %v", n, err)
			}
		})
	})
	if emitAllocs != 0 {
		t.Fatalf("Emit allocates %v; cannot attribute allocations", emitAllocs)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per %d-record Consume", allocs, batch)
	}
	if total != 51*batch*bpftest.PerfRawSize(64) {
		t.Fatalf("handler saw %d bytes", total)
	}
}

func BenchmarkPerfConsume(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m := newPerfArray(b)
			cpu := testCPUs(b)[0]
			r := newPerfReader(b, m, PerfOptions{PagesPerCPU: 64, CPUs: []int{cpu}})
			p, err := bpftest.NewPerfProducer(m, size)
			p = newProducer(b, p, err)
			buf := make([]byte, size)
			const batch = 64
			records := 0
			h := Handler{Sample: func(int, []byte) { records++ }}
			emitOn(b, cpu, func() {
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					for k := 0; k < batch; k++ {
						if err := p.Emit(buf); err != nil {
							b.Error(err)
							return
						}
					}
					b.StartTimer()
					if _, err := r.Consume(h); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}

// TestPerfReaderSkipsCPUsWithoutEvents: an online CPU whose perf event
// answers ENODEV (it went offline after the list was read) is skipped; an
// explicitly requested one is an error.
func TestPerfReaderSkipsCPUsWithoutEvents(t *testing.T) {
	m := newPerfArray(t)
	cpus := testCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs two online CPUs")
	}
	gone := cpus[len(cpus)-1]
	orig := openEvent
	openEvent = func(cpu int, wakeup uint32, watermark bool) (int, error) {
		if cpu == gone {
			return -1, os.NewSyscallError("perf_event_open", unix.ENODEV)
		}
		return orig(cpu, wakeup, watermark)
	}
	defer func() { openEvent = orig }()

	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.CPUs(); !slices.Equal(got, cpus[:len(cpus)-1]) {
		t.Errorf("CPUs() = %v, want %v", got, cpus[:len(cpus)-1])
	}
	if _, err := m.LookupU32(uint32(gone)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot of the skipped CPU: %v", err)
	}
	r.Close()

	if r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: cpus}); !errors.Is(err, unix.ENODEV) || r != nil {
		t.Errorf("explicit CPU without an event: %v", err)
	}
	// The failed setup left nothing behind, also not in the map.
	for _, cpu := range cpus {
		if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
			t.Errorf("slot %d after a failed setup: %v", cpu, err)
		}
	}
	before.Check(t)
}

// fdReadable reports whether fd is readable now, by poll(2): a readiness
// check like the one a host loop embedding ours makes.
func fdReadable(t testing.TB, fd int) bool {
	t.Helper()
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n == 1 && fds[0].Revents&unix.POLLIN != 0
	}
}

// waitReadable blocks until fd is readable.
func waitReadable(t testing.TB, fd int) {
	t.Helper()
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			return
		}
	}
}

// TestPerfReaderWakeupIsAToken: a perf event reports each wakeup once, to
// the first readiness check of Fd, direct or through an epoll instance that
// contains it; what to drain comes from the positions, so Pending and
// Consume find the records whoever took the wakeup.
func TestPerfReaderWakeupIsAToken(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	r := newPerfReader(t, m, PerfOptions{CPUs: []int{cpu}})
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	outer, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(outer)
	if err := unix.EpollCtl(outer, unix.EPOLL_CTL_ADD, r.Fd(), &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		t.Fatal(err)
	}

	if fdReadable(t, r.Fd()) || r.Pending() {
		t.Fatal("Fd readable or records pending before any record")
	}
	emitSeq(t, p, cpu, 0, 1)
	waitReadable(t, outer) // the outer check takes the wakeup
	if fdReadable(t, r.Fd()) {
		t.Error("the wakeup was reported twice")
	}
	if !r.Pending() {
		t.Fatal("Pending false with a record in the ring")
	}
	if n, err := r.Consume(Handler{}); n != 1 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	if r.Pending() {
		t.Fatal("Pending after Consume drained everything")
	}
	// The next wakeup makes Fd readable again.
	emitSeq(t, p, cpu, 1, 2)
	waitReadable(t, outer)
	if n, err := r.Poll(0, Handler{}); n != 1 || err != nil {
		t.Fatalf("Poll = %d, %v", n, err)
	}
}

// TestPerfReaderRunsNoGoroutine: a reader starts no goroutine; the kernel's
// wakeups reach the waiter on Fd directly.
func TestPerfReaderRunsNoGoroutine(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	before := runtime.NumGoroutine()
	r := newPerfReader(t, m, PerfOptions{CPUs: []int{cpu}})
	for i := 0; i < 5; i++ {
		emitSeq(t, p, cpu, i, i+1)
		if n, err := r.Poll(time.Minute, Handler{}); n != 1 || err != nil {
			t.Fatalf("wakeup %d: Poll = %d, %v", i, n, err)
		}
	}
	// The emitting goroutines may still be on their way out: wait for
	// them, a bounded time. A goroutine of the reader's would stay.
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(5 * time.Second); after > before && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		time.Sleep(time.Millisecond)
	}
	if after > before {
		t.Errorf("%d goroutines with a reader, %d before", after, before)
	}
}
