package eventpipe

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// The ring buffer path drains in a batch of the pipe's own loop; these
// pin what it must keep from Consume's: routing and counting, a
// panicking handler, a handler that closes the pipe.

// Records reach their category's handler with CPU -1 and no time; a
// reserved id (nil handler) counts its records as delivered; an unknown
// category reaches OnError and is counted as an error; Stats are exact.
func TestRingRouting(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	var errs []error
	p.OnError(func(err error) { errs = append(errs, err) })
	var got []Event
	p.Register(func(ev Event) {
		ev.Payload = append([]byte(nil), ev.Payload...)
		got = append(got, ev)
	})
	p.Register(nil)
	m := ringMap(t, 1<<14)
	require.NoError(t, p.AttachRing(m.FD()))
	prod := ringProducer(t, m, 16)
	buf := make([]byte, 16)
	cats := []uint32{0, 1, 0, 7, 0, 1}
	for seq, cat := range cats {
		require.NoError(t, prod.Emit(rec(buf, cat, 0, uint32(seq))))
	}
	runUntil(t, l, 10*time.Second, func() bool { return p.Stats().Delivered+p.Stats().Errors == uint64(len(cats)) })
	require.Len(t, got, 3)
	for i, ev := range got {
		require.Equal(t, uint32(0), ev.Category)
		require.Equal(t, -1, ev.CPU)
		require.Zero(t, ev.Time)
		require.Len(t, ev.Payload, 12)
		require.Equal(t, []uint32{0, 2, 4}[i], binary.LittleEndian.Uint32(ev.Payload[4:]))
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], ringbuf.ErrUnknownCategory)
	require.Equal(t, Stats{Delivered: 5, Errors: 1}, p.Stats())
	closePipe(t, l, p)
}

// A handler that panics ends the loop's pass with the panic; its record
// counts as delivered and does not come back; the next pass delivers the
// rest, and the pipe closes cleanly.
func TestRingHandlerPanic(t *testing.T) {
	l := newLoop(t)
	m := ringMap(t, 1<<14)
	prod := ringProducer(t, m, 16)
	snap := leakcheck.Take()
	p := newPipe(t, l, Options{})
	var got []uint32
	p.Register(func(ev Event) {
		seq := binary.LittleEndian.Uint32(ev.Payload[4:])
		got = append(got, seq)
		if seq == 1 || seq == 3 {
			panic("handler")
		}
	})
	require.NoError(t, p.AttachRing(m.FD()))
	emitRing(t, prod, 5)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = l.RunOnce()
	}
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, []uint32{0, 1}, got)
	require.Equal(t, uint64(2), p.Stats().Delivered, "counted, also the panicking handler's record")
	err = nil
	for i := 0; i < 10 && err == nil; i++ {
		_, err = l.RunOnce()
	}
	require.ErrorAs(t, err, &pe)
	runUntil(t, l, 5*time.Second, func() bool { return len(got) == 5 })
	require.Equal(t, []uint32{0, 1, 2, 3, 4}, got, "each record once")
	require.Equal(t, Stats{Delivered: 5}, p.Stats())
	closePipe(t, l, p)
	require.Empty(t, snap.Diff(time.Second))
}

// A handler may close the pipe: no ring record is delivered after that,
// nothing is reported as an error, and everything is released.
func TestRingCloseFromHandler(t *testing.T) {
	l := newLoop(t)
	m := ringMap(t, 1<<14)
	prod := ringProducer(t, m, 16)
	snap := leakcheck.Take()
	p := newPipe(t, l, Options{})
	var errs []error
	p.OnError(func(err error) { errs = append(errs, err) })
	got := 0
	closed := false
	p.Register(func(Event) {
		got++
		p.Close(func() { closed = true })
	})
	require.NoError(t, p.AttachRing(m.FD()))
	emitRing(t, prod, 5)
	runUntil(t, l, 5*time.Second, func() bool { return closed })
	require.Equal(t, 1, got)
	require.Equal(t, Stats{Delivered: 1}, p.Stats())
	require.Empty(t, errs, "the pipe's own Close is not an error")
	require.Empty(t, snap.Diff(time.Second))
}

// emitRing has the kernel write n records of category 0, sequence numbers
// 0..n-1, through prod.
func emitRing(t *testing.T, prod *bpftest.Producer, n uint32) {
	t.Helper()
	buf := make([]byte, 16)
	for seq := range n {
		require.NoError(t, prod.Emit(rec(buf, 0, 0, seq)))
	}
}
