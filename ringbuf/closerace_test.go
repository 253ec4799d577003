package ringbuf

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// Close marks a reader closed, finds a call running and wakes it. If that
// call finished between the two steps and released the reader, the wakeup
// would be written into a closed descriptor, or into whatever reused its
// number. closeHook runs exactly in that gap, and there lets a running
// Consume finish.

// finishDuringClose starts consume on another goroutine, waits until its
// handler runs, and closes the reader with closeHook letting the handler
// return and the call end before Close goes on. It returns Close's error
// and the call's.
func finishDuringClose(t *testing.T, consume func(inHandler func()) error, closeFn func() error) (closeErr, callErr error) {
	t.Helper()
	inside := make(chan struct{})
	proceed := make(chan struct{})
	returned := make(chan error, 1)
	go func() {
		returned <- consume(func() {
			close(inside)
			<-proceed
		})
	}()
	<-inside
	closeHook = func() {
		close(proceed)
		callErr = <-returned
	}
	defer func() { closeHook = nil }()
	closeErr = closeFn()
	if callErr == nil && closeHook != nil {
		// The hook did not run; still end the call.
		select {
		case callErr = <-returned:
		default:
			close(proceed)
			callErr = <-returned
		}
	}
	return closeErr, callErr
}

func TestPerfReaderCallEndsDuringClose(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)
	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{CPUs: []int{cpu}})
	if err != nil {
		t.Fatal(err)
	}
	emitSeq(t, p, cpu, 0, 1)
	closeErr, callErr := finishDuringClose(t, func(inHandler func()) error {
		n, err := r.Consume(Handler{Sample: func(int, []byte) { inHandler() }})
		if n != 1 {
			t.Errorf("Consume delivered %d", n)
		}
		return err
	}, r.Close)
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
	if !errors.Is(callErr, os.ErrClosed) {
		t.Errorf("Consume during Close: %v, want ErrClosed", callErr)
	}
	if _, err := m.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("slot after Close: %v, want ENOENT", err)
	}
	before.Check(t)
}

func TestRingReaderCallEndsDuringClose(t *testing.T) {
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
	closeErr, callErr := finishDuringClose(t, func(inHandler func()) error {
		n, err := r.Consume(func([]byte) { inHandler() })
		if n != 1 {
			t.Errorf("Consume delivered %d", n)
		}
		return err
	}, r.Close)
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
	if !errors.Is(callErr, os.ErrClosed) {
		t.Errorf("Consume during Close: %v, want ErrClosed", callErr)
	}
	if a := r.Available(); a != 0 {
		t.Errorf("Available after Close = %d", a)
	}
	before.Check(t)
}
