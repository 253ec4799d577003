package ringbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func categoryRecord(cat uint32, payload string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, cat)
	return append(b, payload...)
}

func TestDispatcherRoutes(t *testing.T) {
	d := NewDispatcher()
	var got []string
	for i := 0; i < 3; i++ {
		id := d.Register(func(cpu int, p []byte) { got = append(got, fmt.Sprintf("%d:%d:%s", i, cpu, p)) })
		if id != uint32(i) {
			t.Fatalf("Register returned %d, want %d", id, i)
		}
	}
	for _, r := range [][]byte{categoryRecord(2, "two"), categoryRecord(0, ""), categoryRecord(1, "one")} {
		if err := d.Dispatch(5, r); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != "[2:5:two 0:5: 1:5:one]" {
		t.Fatalf("routed %v", got)
	}
	if st := d.Stats(); st != (DispatchStats{Dispatched: 3}) || d.Dropped() != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestDispatcherRejects(t *testing.T) {
	d := NewDispatcher()
	calls := 0
	d.Register(func(int, []byte) { calls++ })
	for _, r := range [][]byte{nil, {}, {0}, {0, 0, 0}} {
		err := d.Dispatch(0, r)
		if !errors.Is(err, ErrShortRecord) || errors.Is(err, ErrUnknownCategory) {
			t.Errorf("%d-byte record: %v", len(r), err)
		}
	}
	for _, cat := range []uint32{1, 7, 1 << 31, 0xffffffff} {
		err := d.Dispatch(0, categoryRecord(cat, "x"))
		if !errors.Is(err, ErrUnknownCategory) || errors.Is(err, ErrShortRecord) {
			t.Errorf("category %d: %v", cat, err)
		}
	}
	// Little-endian: 0x01000000 big-endian would be category 1.
	if err := d.Dispatch(0, []byte{0, 0, 0, 1}); !errors.Is(err, ErrUnknownCategory) {
		t.Errorf("big-endian 1 accepted: %v", err)
	}
	d.Sample(0, []byte{1})          // counted, not returned
	d.Record(categoryRecord(9, "")) // counted, not returned
	if calls != 0 {
		t.Fatalf("handler called %d times", calls)
	}
	if st := d.Stats(); st != (DispatchStats{Short: 5, Unknown: 6}) || d.Dropped() != 11 {
		t.Fatalf("Stats = %+v, Dropped = %d", st, d.Dropped())
	}
}

func TestDispatcherNilHandlerAndCPU(t *testing.T) {
	d := NewDispatcher()
	d.Register(nil)
	cpu := 0
	d.Register(func(c int, _ []byte) { cpu = c })
	if err := d.Dispatch(3, categoryRecord(0, "dropped")); err != nil {
		t.Fatal(err)
	}
	d.Record(categoryRecord(1, ""))
	if cpu != -1 {
		t.Fatalf("Record delivered cpu %d, want -1", cpu)
	}
	h := Handler{Sample: d.Sample}
	h.Sample(4, categoryRecord(1, ""))
	if cpu != 4 {
		t.Fatalf("Sample delivered cpu %d, want 4", cpu)
	}
}

func TestDispatcherConcurrentRegister(t *testing.T) {
	d := NewDispatcher()
	var wg sync.WaitGroup
	ids := make([]uint32, 64)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = d.Register(func(int, []byte) {})
			d.Dispatch(0, categoryRecord(ids[i], ""))
		}()
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, id := range ids {
		if id >= 64 || seen[id] {
			t.Fatalf("ids %v", ids)
		}
		seen[id] = true
	}
	if st := d.Stats(); st.Dispatched != 64 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestDispatchAllocatesNothing(t *testing.T) {
	d := NewDispatcher()
	n := 0
	d.Register(func(int, []byte) { n++ })
	rec := categoryRecord(0, "payload")
	bad := categoryRecord(5, "")
	if a := testing.AllocsPerRun(100, func() {
		if err := d.Dispatch(1, rec); err != nil {
			t.Fatal(err)
		}
		d.Sample(1, bad)
	}); a != 0 {
		t.Fatalf("%v allocations per Dispatch", a)
	}
	if n != 101 {
		t.Fatalf("handler ran %d times", n)
	}
}
