package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// A handler that panics must not wedge the reader: the record it was given
// counts as consumed, the panic reaches the caller, the records after it
// stay in the ring for the next call, and Close still releases everything
// (also when the handler closed the reader before panicking).

// catchPanic runs fn and returns what it panicked with, or nil.
func catchPanic(fn func()) (v any) {
	defer func() { v = recover() }()
	fn()
	return nil
}

// emitSeq has the kernel write records seq from..to-1 on cpu.
func emitSeq(t *testing.T, p *bpftest.Producer, cpu, from, to int) {
	t.Helper()
	emitOn(t, cpu, func() {
		buf := make([]byte, p.RecordSize())
		for seq := from; seq < to; seq++ {
			if err := p.Emit(record(buf, cpu, seq)); err != nil {
				t.Error(err)
				return
			}
		}
	})
}

func TestPerfReaderHandlerPanic(t *testing.T) {
	for _, method := range []string{"Consume", "Poll"} {
		t.Run(method, func(t *testing.T) {
			m := newPerfArray(t)
			cpu := testCPUs(t)[0]
			p, err := bpftest.NewPerfProducer(m, 16)
			p = newProducer(t, p, err)
			before := leakcheck.Take()
			r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
			if err != nil {
				t.Fatal(err)
			}
			call := func(h Handler) (int, error) {
				if method == "Poll" {
					return r.Poll(-1, h)
				}
				return r.Consume(h)
			}
			var got []int
			collect := func(_ int, d []byte) { got = append(got, int(getU32(d[4:]))) }
			panicAt := func(seq int) Handler {
				return Handler{Sample: func(c int, d []byte) {
					collect(c, d)
					if int(getU32(d[4:])) == seq {
						panic(fmt.Sprintf("record %d", seq))
					}
				}}
			}

			emitSeq(t, p, cpu, 0, 5)
			if v := catchPanic(func() { call(panicAt(1)) }); v != "record 1" {
				t.Fatalf("%s did not pass the handler's panic on: %v", method, v)
			}
			// Records are left, so Fd stays readable: a loop comes back
			// for them.
			if !fdReadable(t, r.Fd()) {
				t.Fatal("Fd not readable after a panic left records behind")
			}
			if n, err := r.Consume(Handler{Sample: collect}); n != 3 || err != nil {
				t.Fatalf("Consume after the panic = %d, %v (delivered %v)", n, err, got)
			}
			// Again, so the next call has to wait for a fresh wakeup.
			emitSeq(t, p, cpu, 5, 8)
			if v := catchPanic(func() { call(panicAt(6)) }); v != "record 6" {
				t.Fatalf("second panic: %v", v)
			}
			if n, err := r.Consume(Handler{Sample: collect}); n != 1 || err != nil {
				t.Fatalf("Consume after the second panic = %d, %v (delivered %v)", n, err, got)
			}
			if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want each of %v once", got, want)
			}
			if st := r.Stats(); st.Samples != 8 {
				t.Errorf("Stats = %+v", st)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
				t.Errorf("slot after Close: %v, want ENOENT", err)
			}
			before.Check(t)
		})
	}
}

// TestPerfReaderCloseThenPanic: a handler closes the reader and then
// panics; the unwinding call must release what Close left to it.
func TestPerfReaderCloseThenPanic(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	emitSeq(t, p, cpu, 0, 3)
	v := catchPanic(func() {
		r.Consume(Handler{Sample: func(int, []byte) {
			if err := r.Close(); err != nil {
				t.Errorf("Close from the handler: %v", err)
			}
			panic("after close")
		}})
	})
	if v != "after close" {
		t.Fatalf("recovered %v", v)
	}
	if _, err := r.Consume(Handler{}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Consume after Close: %v", err)
	}
	if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot after Close: %v, want ENOENT", err)
	}
	before.Check(t)
}

func TestRingReaderCallbackPanic(t *testing.T) {
	for _, method := range []string{"Consume", "Poll"} {
		t.Run(method, func(t *testing.T) {
			m := newRingMap(t, 1<<14)
			p, err := bpftest.NewRingProducer(m, 16)
			p = newProducer(t, p, err)
			before := leakcheck.Take()
			r, err := NewRingReader(m.FD())
			if err != nil {
				t.Fatal(err)
			}
			call := func(fn func([]byte)) (int, error) {
				if method == "Poll" {
					return r.Poll(time.Minute, fn)
				}
				return r.Consume(fn)
			}
			var got []int
			collect := func(d []byte) { got = append(got, int(getU32(d[4:]))) }
			panicAt := func(seq int) func([]byte) {
				return func(d []byte) {
					collect(d)
					if int(getU32(d[4:])) == seq {
						panic(fmt.Sprintf("record %d", seq))
					}
				}
			}
			emit := func(from, to int) {
				buf := make([]byte, 16)
				for seq := from; seq < to; seq++ {
					if err := p.Emit(record(buf, 0, seq)); err != nil {
						t.Fatal(err)
					}
				}
			}

			emit(0, 5)
			if v := catchPanic(func() { call(panicAt(1)) }); v != "record 1" {
				t.Fatalf("%s did not pass the callback's panic on: %v", method, v)
			}
			// The ring buffer's readiness is its fill level, so a Poll
			// comes straight back for the rest.
			if n, err := call(collect); n != 3 || err != nil {
				t.Fatalf("%s after the panic = %d, %v (delivered %v)", method, n, err, got)
			}
			emit(5, 8)
			if v := catchPanic(func() { call(panicAt(6)) }); v != "record 6" {
				t.Fatalf("second panic: %v", v)
			}
			if n, err := call(collect); n != 1 || err != nil {
				t.Fatalf("%s after the second panic = %d, %v (delivered %v)", method, n, err, got)
			}
			if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
				t.Fatalf("delivered %v, want each of %v once", got, want)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			before.Check(t)
		})
	}
}

func TestRingReaderCloseThenPanic(t *testing.T) {
	m := newRingMap(t, 1<<14)
	p, err := bpftest.NewRingProducer(m, 16)
	p = newProducer(t, p, err)
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Emit(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
	v := catchPanic(func() {
		r.Poll(time.Minute, func([]byte) {
			if err := r.Close(); err != nil {
				t.Errorf("Close from the callback: %v", err)
			}
			panic("after close")
		})
	})
	if v != "after close" {
		t.Fatalf("recovered %v", v)
	}
	if _, err := r.Consume(nil); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Consume after Close: %v", err)
	}
	before.Check(t)
}
