package ringbuf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// Tests against the kernel: the ring buffer is filled by a BPF program
// calling bpf_ringbuf_output or bpf_ringbuf_reserve/submit/discard.

func newRingReader(t testing.TB, m *bpftest.Map) *RingReader {
	t.Helper()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatalf("NewRingReader: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRingReaderSetup(t *testing.T) {
	const size = 1 << 14
	m := newRingMap(t, size)
	page := os.Getpagesize()
	before := leakcheck.Take()
	mapsBefore := len(kernelMappings(t, "anon_inode:bpf-map"))

	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	if r.Size() != size {
		t.Fatalf("Size() = %d, want %d", r.Size(), size)
	}
	if n := len(kernelMappings(t, "anon_inode:bpf-map")) - mapsBefore; n != 2 {
		t.Fatalf("%d new ring buffer mappings, want 2", n)
	}
	// The consumer page read-write; the producer page and the data area,
	// mapped twice by the kernel, read-only.
	cons, ok := mappingOf(t, "anon_inode:bpf-map", r.cons)
	if !ok || cons.perms != "rw-s" || cons.offset != 0 || cons.size() != page {
		t.Errorf("consumer page mapped as %+v (found %v)", cons, ok)
	}
	prod, ok := mappingOf(t, "anon_inode:bpf-map", r.prod)
	if !ok || prod.perms != "r--s" || prod.offset != uint64(page) || prod.size() != page+2*size {
		t.Errorf("producer page and data mapped as %+v (found %v)", prod, ok)
	}
	if r.Fd() < 0 || r.Available() != 0 {
		t.Errorf("Fd() = %d, Available() = %d", r.Fd(), r.Available())
	}

	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r.Fd() != -1 || r.Available() != 0 || r.Size() != size {
		t.Errorf("after Close: Fd %d, Available %d, Size %d", r.Fd(), r.Available(), r.Size())
	}
	if err := r.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Consume(func([]byte) {}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Consume after Close: %v", err)
	}
	if _, err := r.Poll(0, func([]byte) {}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
	before.Check(t)
}

func TestRingReaderRejects(t *testing.T) {
	bpftest.Require(t)
	perf := newPerfArray(t)
	arr, err := bpftest.NewArray(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	cases := []struct {
		name string
		fd   int
		want error
	}{
		{"array map", arr.FD(), unix.EINVAL},
		{"perf event array", perf.FD(), unix.EINVAL},
		{"not a map", nonMapFD(t), unix.EINVAL},
		{"not a descriptor", -1, unix.EBADF},
		{"closed descriptor", closedFD(t), unix.EBADF},
	}
	before := leakcheck.Take()
	for _, c := range cases {
		r, err := NewRingReader(c.fd)
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

// TestRingReaderDelivery runs records of several sizes through a small ring
// for many laps: each arrives once, in order, exactly as long as written,
// and in place even when it wraps the ring's end.
func TestRingReaderDelivery(t *testing.T) {
	const size = 4096
	m := newRingMap(t, size)
	r := newRingReader(t, m)
	sizes := []int{8, 61, 200, 333}
	var prods []*bpftest.Producer
	for _, n := range sizes {
		p, err := bpftest.NewRingProducer(m, n)
		prods = append(prods, newProducer(t, p, err))
	}
	buf := make([]byte, 512)
	sent, next, wrapped := 0, 0, 0
	fn := func(d []byte) {
		seq := int(getU32(d[4:]))
		n := sizes[seq%len(sizes)]
		if seq != next || len(d) != n {
			t.Fatalf("record %d of %d bytes, want record %d of %d bytes", seq, len(d), next, n)
		}
		if want := record(make([]byte, n), 0, seq); !bytes.Equal(d, want) {
			t.Fatalf("record %d: got %x, want %x", seq, d, want)
		}
		if !within(d, r.prod) {
			t.Fatalf("record %d not in the mapping", seq)
		}
		off := uintptr(unsafePointer(d)) - uintptr(unsafePointer(r.ring.data))
		if off+uintptr(len(d)) > size {
			wrapped++
		}
		next++
	}
	for round := 0; round < 40; round++ {
		for k := 0; k < 10; k++ { // at most 10*344 bytes: never fills 4 KiB
			p := prods[sent%len(sizes)]
			if err := p.Emit(record(buf, 0, sent)[:p.RecordSize()]); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		if _, err := r.Consume(fn); err != nil {
			t.Fatal(err)
		}
	}
	if next != sent {
		t.Fatalf("delivered %d of %d", next, sent)
	}
	if wrapped == 0 {
		t.Error("no record wrapped the end of the ring")
	}
	if st := r.Stats(); st.Records != uint64(sent) || st.Discarded != 0 || st.Resyncs != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestRingReaderDiscard(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r := newRingReader(t, m)
	p, err := bpftest.NewRingDiscardProducer(m, 24)
	p = newProducer(t, p, err)
	buf := make([]byte, 24)
	for i := 0; i < 40; i++ {
		record(buf, 0, i)
		buf[0] = byte(i) // odd first byte: discarded
		if err := p.Emit(buf); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Written != 40 || st.Discarded != 20 {
		t.Fatalf("producer stats %+v", st)
	}
	var seqs []int
	n, err := r.Consume(func(d []byte) {
		if d[0]%2 != 0 {
			t.Fatalf("discarded record %d delivered", getU32(d[4:]))
		}
		seqs = append(seqs, int(getU32(d[4:])))
	})
	if n != 20 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	for i, seq := range seqs {
		if seq != 2*i {
			t.Fatalf("records %v", seqs)
		}
	}
	// Discarded records are acknowledged too: nothing is left.
	if a := r.Available(); a != 0 {
		t.Fatalf("Available() = %d after draining", a)
	}
	if st := r.Stats(); st.Records != 20 || st.Discarded != 20 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestRingReaderAvailableExact(t *testing.T) {
	const size = 1 << 13
	m := newRingMap(t, size)
	r := newRingReader(t, m)
	if r.Size() != size {
		t.Fatalf("Size() = %d", r.Size())
	}
	want := 0
	for _, n := range []int{1, 8, 13, 100, 256} {
		p, err := bpftest.NewRingProducer(m, n)
		p = newProducer(t, p, err)
		if err := p.Emit(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		want += bpftest.RingRecordLen(n)
		if got := r.Available(); got != want {
			t.Fatalf("after a %d-byte record: Available() = %d, want %d", n, got, want)
		}
	}
	if n, err := r.Consume(func([]byte) {}); n != 5 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
	if got := r.Available(); got != 0 {
		t.Fatalf("Available() = %d after draining", got)
	}
}

// TestRingReaderFull fills the ring until the kernel refuses records and
// checks exactly the accepted ones come out.
func TestRingReaderFull(t *testing.T) {
	const size = 4096
	m := newRingMap(t, size)
	r := newRingReader(t, m)
	p, err := bpftest.NewRingProducer(m, 100)
	p = newProducer(t, p, err)
	buf := make([]byte, 100)
	for i := 0; i < 100; i++ {
		if err := p.Emit(record(buf, 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	st := p.Stats()
	if st.Dropped == 0 || int(st.Written) != size/bpftest.RingRecordLen(100) {
		t.Fatalf("producer stats %+v", st)
	}
	if r.Available() != int(st.Written)*bpftest.RingRecordLen(100) {
		t.Fatalf("Available() = %d with %d records", r.Available(), st.Written)
	}
	next := 0
	n, err := r.Consume(func(d []byte) {
		if int(getU32(d[4:])) != next {
			t.Fatalf("record %d, want %d", getU32(d[4:]), next)
		}
		next++
	})
	if n != int(st.Written) || err != nil {
		t.Fatalf("Consume = %d, %v; written %d", n, err, st.Written)
	}
}

func TestRingReaderPoll(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r := newRingReader(t, m)
	p, err := bpftest.NewRingProducer(m, 16)
	p = newProducer(t, p, err)
	if n, err := r.Poll(0, func([]byte) {}); n != 0 || err != nil {
		t.Fatalf("Poll on an empty ring = %d, %v", n, err)
	}
	for i := 0; i < 3; i++ {
		if err := p.Emit(record(make([]byte, 16), 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < 3 {
		if _, err := r.Poll(-1, func([]byte) { got++ }); err != nil {
			t.Fatal(err)
		}
	}
	if got != 3 {
		t.Fatalf("delivered %d", got)
	}
	if n, err := r.Poll(0, func([]byte) {}); n != 0 || err != nil {
		t.Fatalf("Poll after draining = %d, %v", n, err)
	}
}

func TestRingReaderCloseWakesPoll(t *testing.T) {
	m := newRingMap(t, 1<<14)
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := r.Poll(-1, func([]byte) {})
		done <- err
	}()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Poll after Close: %v", err)
	}
	before.Check(t)
}

func TestRingReaderCloseFromCallback(t *testing.T) {
	m := newRingMap(t, 1<<14)
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpftest.NewRingProducer(m, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := p.Emit(make([]byte, 8)); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	calls := 0
	var nested error
	n, err := r.Consume(func([]byte) {
		calls++
		_, nested = r.Poll(0, func([]byte) {})
		if a := r.Available(); a != 3*bpftest.RingRecordLen(8) {
			t.Errorf("Available() during the batch = %d", a)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close from callback: %v", err)
		}
	})
	if !errors.Is(nested, unix.EBUSY) {
		t.Errorf("Poll from a callback: %v", nested)
	}
	if calls != 1 || n != 1 || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Consume = %d, %v after %d calls; want 1 record then ErrClosed", n, err, calls)
	}
	before.Check(t)
}

// Consume, and a batch (Begin, Next, Record, End), allocate nothing.
func TestRingReaderConsumeAllocatesNothing(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r := newRingReader(t, m)
	p, err := bpftest.NewRingProducer(m, 64)
	p = newProducer(t, p, err)
	buf := make([]byte, 64)
	const batch = 32
	total := 0
	fn := func(d []byte) { total += len(d) }
	drains := map[string]func() (int, error){
		"Consume": func() (int, error) { return r.Consume(fn) },
		"batch": func() (int, error) {
			b, err := r.Begin()
			if err != nil {
				return 0, err
			}
			for b.Next() {
				fn(b.Record())
			}
			return b.End()
		},
	}
	if a := testing.AllocsPerRun(10, func() { p.Emit(buf) }); a != 0 {
		t.Fatalf("Emit allocates %v; cannot attribute allocations", a)
	}
	for name, drain := range drains {
		drain()
		total = 0
		allocs := testing.AllocsPerRun(50, func() {
			for i := 0; i < batch; i++ {
				if err := p.Emit(buf); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := drain(); n != batch || err != nil {
				t.Fatalf("%s = %d, %v", name, n, err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v allocations per %d-record %s", allocs, batch, name)
		}
		if total != 51*batch*64 {
			t.Fatalf("%s: callback saw %d bytes", name, total)
		}
	}
}

func BenchmarkRingConsume(b *testing.B) {
	for _, size := range []int{64, 256} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			m := newRingMap(b, 1<<20)
			r := newRingReader(b, m)
			p, err := bpftest.NewRingProducer(m, size)
			p = newProducer(b, p, err)
			buf := make([]byte, size)
			const batch = 64
			records := 0
			fn := func([]byte) { records++ }
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for k := 0; k < batch; k++ {
					if err := p.Emit(buf); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				if _, err := r.Consume(fn); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(records)/float64(b.N), "records/op")
		})
	}
}

// TestRingReaderConcurrentClose runs Poll on one goroutine and Available on
// another while records stream in, then closes the reader from a third:
// under the race detector, and with the leak check, nothing may touch the
// mapping after it is gone or leave it behind.
func TestRingReaderConcurrentClose(t *testing.T) {
	m := newRingMap(t, 1<<14)
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	p, err := bpftest.NewRingProducer(m, 32)
	if err != nil {
		t.Fatal(err)
	}
	const total = 2000
	seen := make(chan int, 1)
	polled := make(chan error, 1)
	go func() {
		got := 0
		for {
			_, err := r.Poll(-1, func([]byte) {
				if got++; got == total {
					seen <- got
				}
			})
			if err != nil {
				polled <- err
				return
			}
		}
	}()
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
				if a := r.Available(); a < 0 || a > r.Size() {
					t.Errorf("Available() = %d", a)
				}
			}
		}
	}()
	buf := make([]byte, 32)
	for sent := 0; sent < total; {
		ok, err := p.TryEmit(buf)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			sent++
		}
	}
	<-seen
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-polled; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Poll ended with %v", err)
	}
	close(stop)
	<-watched
	p.Close()
	before.Check(t)
}
