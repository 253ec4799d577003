package ringbuf

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// errConcurrent is returned when Consume or Poll is entered while another
// call on the same reader is running (from another goroutine, or from inside
// a handler). It wraps EBUSY so that callers can tell it apart.
var errConcurrent = fmt.Errorf("ringbuf: Consume or Poll already running on this reader: %w", unix.EBUSY)

const (
	guardClosed = 1 << iota
	guardBusy
	guardShared = 1 << 8 // unit of the count of shared holders, in the upper bits
)

// guard serialises a reader's Consume/Poll, lets light accessors (such as
// Available) read the mapping from other goroutines, and decides who
// releases the reader's kernel resources. Close while anyone reads the
// mapping must not unmap it, so Close then only marks the reader closed and
// the last holder releases on its way out. Every transition is one CAS on
// one word, so exactly one party sees "closed and nobody inside".
type guard struct {
	state atomic.Uint32
}

// enter claims the reader for one Consume or Poll.
func (g *guard) enter(what string) error {
	for {
		s := g.state.Load()
		if s&guardClosed != 0 {
			return fmt.Errorf("ringbuf: %s: %w", what, os.ErrClosed)
		}
		if s&guardBusy != 0 {
			return errConcurrent
		}
		if g.state.CompareAndSwap(s, s|guardBusy) {
			return nil
		}
	}
}

// exit ends a call started by enter. It reports whether the reader was
// closed meanwhile, in which case the caller must release it.
func (g *guard) exit() (release bool) {
	for {
		s := g.state.Load()
		ns := s &^ guardBusy
		if g.state.CompareAndSwap(s, ns) {
			return ns&guardClosed != 0 && ns < guardShared
		}
	}
}

// close marks the reader closed. releaseNow is false when a call is running;
// that call releases instead.
func (g *guard) close() (releaseNow bool, err error) {
	for {
		s := g.state.Load()
		if s&guardClosed != 0 {
			return false, fmt.Errorf("ringbuf: close: %w", os.ErrClosed)
		}
		if g.state.CompareAndSwap(s, s|guardClosed) {
			return s&guardBusy == 0 && s < guardShared, nil
		}
	}
}

// enterShared claims the mapping for a short read that may run alongside
// Consume.
func (g *guard) enterShared() error {
	for {
		s := g.state.Load()
		if s&guardClosed != 0 {
			return os.ErrClosed
		}
		if g.state.CompareAndSwap(s, s+guardShared) {
			return nil
		}
	}
}

// exitShared ends enterShared; like exit, it reports whether the caller must
// release the reader.
func (g *guard) exitShared() (release bool) {
	for {
		s := g.state.Load()
		ns := s - guardShared
		if g.state.CompareAndSwap(s, ns) {
			return ns&guardClosed != 0 && ns&guardBusy == 0 && ns < guardShared
		}
	}
}

// closed reports whether Close has been called; the drain loops check it
// between records so a handler that closes the reader sees no more calls.
func (g *guard) closed() bool { return g.state.Load()&guardClosed != 0 }
