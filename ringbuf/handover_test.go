package ringbuf

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// A reload or restart hands a perf event array from reader A to reader B:
// B is created while A still runs, and A is closed afterwards. A's Close
// must not take B's entries out of the array.

// handover creates A then B on one CPU of m, closes A and returns B and
// the error of one BPF program output on that CPU.
func handover(t *testing.T, m *bpftest.Map, cpu int) (*PerfReader, error) {
	t.Helper()
	a, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	b := newPerfReader(t, m, PerfOptions{CPUs: []int{cpu}})
	if err := a.Close(); err != nil {
		t.Fatalf("A.Close: %v", err)
	}
	p, err := bpftest.NewPerfProducer(m, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var emitErr error
	emitOn(t, cpu, func() { emitErr = p.Emit(record(make([]byte, 16), cpu, 1)) })
	return b, emitErr
}

func TestPerfReaderCloseKeepsReplacement(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	before := leakcheck.Take()
	b, emitErr := handover(t, m, cpu)
	if !b.owned {
		t.Fatal("the reader did not get a map file of its own (running without CAP_SYS_ADMIN?)")
	}
	if emitErr != nil {
		t.Fatalf("output after the old reader's Close: %v", emitErr)
	}
	var got []uint32
	if _, err := b.Consume(Handler{Sample: func(_ int, data []byte) { got = append(got, getU32(data[4:])) }}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("the replacement got %v, want record 1", got)
	}
	// B's own Close still empties the slot: the kernel released B's
	// entries with B's file.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot after the replacement's Close: %v, want ENOENT", err)
	}
	before.Check(t)
}

// TestPerfReaderFallbackWithoutMapByID: where the kernel refuses to open
// the map by id (EPERM without CAP_SYS_ADMIN), the reader inserts through
// its duplicate of the caller's file and Close deletes its keys, which, as
// the doc says, also removes a replacement's entries at those keys.
func TestPerfReaderFallbackWithoutMapByID(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	orig := openMapByID
	openMapByID = func(uint32) (int, error) { return -1, unix.EPERM }
	t.Cleanup(func() { openMapByID = orig })
	before := leakcheck.Take()

	// One reader: its entries are in the array while it is open and gone
	// after Close, although the caller's file stays open.
	r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	if r.owned {
		t.Fatal("the fallback was not taken")
	}
	if _, err := m.LookupU32(uint32(cpu)); err != nil {
		t.Fatalf("slot while open: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("slot after Close: %v, want ENOENT", err)
	}

	// A hand-over: A's Close deletes the key B stored at.
	b, emitErr := handover(t, m, cpu)
	if !errors.Is(emitErr, unix.ENOENT) {
		t.Fatalf("output after the old reader's Close in the fallback: %v, want ENOENT as documented", emitErr)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before.Check(t)
}

// TestPerfReaderPreserveElemsDeletesKeys: a map created with
// BPF_F_PRESERVE_ELEMS keeps entries past the release of the file that
// inserted them, so there the reader deletes its keys on Close.
func TestPerfReaderPreserveElemsDeletesKeys(t *testing.T) {
	bpftest.Require(t)
	cpu := testCPUs(t)[0]
	fd, err := createMap(unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, uint32(cpu+1), unix.BPF_F_PRESERVE_ELEMS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	r, err := NewPerfReader(fd, PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	if r.owned {
		t.Error("the kernel would not remove the entries of a BPF_F_PRESERVE_ELEMS map with the reader's file")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bpfsys.DeleteU32(fd, uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot after Close: %v, want already empty (ENOENT)", err)
	}
}
