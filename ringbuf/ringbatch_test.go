package ringbuf

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// drainBatch runs one batch of r to its end and returns the sequence
// numbers of the records (record's layout) and End's results.
func drainBatch(t *testing.T, r *RingReader) ([]int, int, error) {
	t.Helper()
	b, err := r.Begin()
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	var seqs []int
	for b.Next() {
		seqs = append(seqs, int(getU32(b.Record()[4:])))
	}
	n, err := b.End()
	return seqs, n, err
}

// ringHolding returns a reader, for the caller to close, of a ring into
// which the kernel wrote n 16-byte records (record's layout, sequence
// numbers from 0), and the leak snapshot taken just before it opened.
func ringHolding(t *testing.T, n int) (*RingReader, leakcheck.Snapshot) {
	t.Helper()
	m := newRingMap(t, 1<<14)
	p, err := bpftest.NewRingProducer(m, 16)
	p = newProducer(t, p, err)
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	for i := range n {
		if err := p.Emit(record(buf, 0, i)); err != nil {
			r.Close()
			t.Fatal(err)
		}
	}
	return r, before
}

// A batch delivers the kernel's records in order, skips and counts
// discarded ones, stores the consumer position once at End, and counts
// into Stats exactly what it delivered.
func TestRingBatchDelivery(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r := newRingReader(t, m)
	p, err := bpftest.NewRingDiscardProducer(m, 24)
	p = newProducer(t, p, err)
	buf := make([]byte, 24)
	for i := range 40 {
		record(buf, 0, i)
		buf[0] = byte(i) // odd first byte: discarded
		if err := p.Emit(buf); err != nil {
			t.Fatal(err)
		}
	}
	b, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	avail := r.Available()
	var seqs []int
	for b.Next() {
		rec := b.Record()
		if len(rec) != 24 || cap(rec) != 24 {
			t.Fatalf("record of len %d, cap %d", len(rec), cap(rec))
		}
		if rec[0]%2 != 0 {
			t.Fatalf("discarded record %d delivered", getU32(rec[4:]))
		}
		if a := r.Available(); a != avail {
			t.Fatalf("consumer position moved during the batch: %d bytes left, %d at Begin", a, avail)
		}
		seqs = append(seqs, int(getU32(rec[4:])))
	}
	if b.Next() {
		t.Fatal("Next after the batch's end reported a record")
	}
	if st := r.Stats(); st.Records != 0 {
		t.Fatalf("Stats before End = %+v", st)
	}
	n, err := b.End()
	if n != 20 || err != nil {
		t.Fatalf("End = %d, %v", n, err)
	}
	for i, seq := range seqs {
		if seq != 2*i {
			t.Fatalf("records %v", seqs)
		}
	}
	if a := r.Available(); a != 0 {
		t.Fatalf("Available() = %d after End", a)
	}
	if st := r.Stats(); st != (RingStats{Records: 20, Discarded: 20}) {
		t.Fatalf("Stats = %+v", st)
	}
	if _, err := b.End(); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("second End: %v", err)
	}
	if b.Next() || len(b.Record()) != 0 {
		t.Fatal("a batch after End still reports a record")
	}
	// The reader is free again.
	if n, err := r.Consume(nil); n != 0 || err != nil {
		t.Fatalf("Consume after End = %d, %v", n, err)
	}
}

// A loop that stops early leaves the records after the last one it took
// for the next batch.
func TestRingBatchEndEarly(t *testing.T) {
	r, _ := ringHolding(t, 6)
	defer r.Close()
	b, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if !b.Next() {
			t.Fatal("batch ended early")
		}
	}
	if n, err := b.End(); n != 2 || err != nil {
		t.Fatalf("End = %d, %v", n, err)
	}
	if seqs, n, err := drainBatch(t, r); !slices.Equal(seqs, []int{2, 3, 4, 5}) || n != 4 || err != nil {
		t.Fatalf("next batch: %v, End = %d, %v", seqs, n, err)
	}
	if st := r.Stats(); st.Records != 6 {
		t.Fatalf("Stats = %+v", st)
	}
}

// While a batch is open the reader is claimed: Consume, Poll and Begin
// are EBUSY; End without a Begin is EINVAL; Begin after Close is
// ErrClosed.
func TestRingBatchClaims(t *testing.T) {
	m := newRingMap(t, 1<<14)
	r := newRingReader(t, m)
	b, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Consume(nil); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Consume during a batch: %v", err)
	}
	if _, err := r.Poll(0, nil); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Poll during a batch: %v", err)
	}
	if _, err := r.Begin(); !errors.Is(err, unix.EBUSY) {
		t.Errorf("Begin during a batch: %v", err)
	}
	if b.Next() {
		t.Error("a record in an empty ring")
	}
	if n, err := b.End(); n != 0 || err != nil {
		t.Fatalf("End = %d, %v", n, err)
	}
	var none RingBatch
	if _, err := none.End(); !errors.Is(err, unix.EINVAL) {
		t.Errorf("End without Begin: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Begin(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Begin after Close: %v", err)
	}
}

// Close inside the loop ends the batch at the next Next; the record in
// hand stays readable until End, which releases everything and reports
// the Close.
func TestRingBatchCloseInLoop(t *testing.T) {
	r, before := ringHolding(t, 3)
	b, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for b.Next() {
		calls++
		if err := r.Close(); err != nil {
			t.Fatalf("Close in the loop: %v", err)
		}
		if seq := getU32(b.Record()[4:]); seq != 0 {
			t.Fatalf("record %d after Close", seq)
		}
	}
	if calls != 1 {
		t.Fatalf("%d records delivered across a Close", calls)
	}
	if n, err := b.End(); n != 1 || !errors.Is(err, os.ErrClosed) {
		t.Fatalf("End = %d, %v; want 1 and ErrClosed", n, err)
	}
	if b.Next() {
		t.Fatal("Next after End of a closed reader")
	}
	before.Check(t)
}

// A handler that panics inside the loop, with End deferred, consumes the
// record it was given: the next batch starts after it, and the reader is
// usable and closes cleanly.
func TestRingBatchPanic(t *testing.T) {
	r, before := ringHolding(t, 5)
	var got []int
	v := catchPanic(func() {
		b, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer b.End()
		for b.Next() {
			seq := int(getU32(b.Record()[4:]))
			got = append(got, seq)
			if seq == 1 {
				panic("record 1")
			}
		}
	})
	if v != "record 1" {
		t.Fatalf("recovered %v", v)
	}
	seqs, n, err := drainBatch(t, r)
	if got = append(got, seqs...); !slices.Equal(got, []int{0, 1, 2, 3, 4}) || n != 3 || err != nil {
		t.Fatalf("delivered %v (End = %d, %v), want each record once", got, n, err)
	}
	if st := r.Stats(); st.Records != 5 {
		t.Fatalf("Stats = %+v", st)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	before.Check(t)
}

// On a ring in ordinary memory: a batch stops at a reserved record
// without error and delivers it once committed; a corrupt header ends
// the batch, resynchronises the ring and makes End report ErrCorrupt; a
// ring whose positions are inconsistent yields an empty batch and the
// same error.
func TestBPFRingBatchStops(t *testing.T) {
	s := newSimRing(t, 1024, 0)
	s.output(payloadOf(0, 10))
	busy, _ := s.reserve(10)
	s.output(payloadOf(2, 10))
	b := s.begin()
	if !b.Next() || b.Next() {
		t.Fatal("the batch went past the reserved record, or missed the first")
	}
	s.commit(busy, 10, false) // after Next stopped there: still not corrupt
	if n, err := b.End(); n != 1 || err != nil {
		t.Fatalf("End at a reserved record = %d, %v", n, err)
	}
	if s.consPos() != busy {
		t.Fatalf("consumer at %d, want the reserved record's %d", s.consPos(), busy)
	}
	if n, err := s.consume(nil); n != 2 || err != nil {
		t.Fatalf("after the commit: %d, %v", n, err)
	}

	bad := s.pos
	s.output(payloadOf(3, 10))
	s.output(payloadOf(4, 10))
	s.setHeader(bad, 500) // larger than the 48 bytes reserved from it on
	b = s.begin()
	if b.Next() {
		t.Fatal("a corrupt record delivered")
	}
	if n, err := b.End(); n != 0 || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("End at a corrupt header = %d, %v", n, err)
	}
	if s.consPos() != s.pos || s.c.resyncs.Load() != 1 {
		t.Fatalf("consumer %d, producer %d, %d resyncs", s.consPos(), s.pos, s.c.resyncs.Load())
	}

	*u64At(s.prod, 0) = s.pos + 4096 // more than the ring holds
	b = s.begin()
	if b.Next() {
		t.Fatal("a record past inconsistent positions")
	}
	if _, err := b.End(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("End after inconsistent positions: %v", err)
	}
	if s.consPos() != s.pos+4096 || s.c.resyncs.Load() != 2 {
		t.Fatalf("consumer %d not resynchronised to %d", s.consPos(), s.pos+4096)
	}
}

// Next and Record exist to be inlined into the caller's loop; a change
// that makes them too costly for the compiler's inliner would quietly
// bring back a call per record.
func TestRingBatchInlined(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to ask the compiler")
	}
	out, err := exec.Command(gobin, "build", "-gcflags=-m", "-o", os.DevNull, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, fn := range []string{"(*RingBatch).Next", "(*RingBatch).Record"} {
		if !strings.Contains(string(out), "can inline "+fn) {
			t.Errorf("the compiler no longer inlines %s", fn)
		}
	}
}
