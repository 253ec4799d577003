package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
)

// The errors of enter and leave, for each operation that enters: a Consume
// or Poll entered while another call on the same reader is running (from
// another goroutine, or from inside a handler) wraps EBUSY so that callers
// can tell it apart; closed ends a call that Close interrupted. Built once,
// as they are returned on the reader's hot path.
type opErrors struct{ busy, closed error }

func newOpErrors(op string) opErrors {
	return opErrors{
		busy:   fmt.Errorf("ringbuf: %s: another call is reading this reader: %w", op, unix.EBUSY),
		closed: fmt.Errorf("ringbuf: %s: reader closed during the call: %w", op, os.ErrClosed),
	}
}

// The errors of each call that claims a reader, made once: a claim on the
// hot path allocates nothing, and each error names its own call.
var (
	consumeErrors      = newOpErrors("consume")
	pollErrors         = newOpErrors("poll")
	beginErrors        = newOpErrors("begin")
	peekErrors         = newOpErrors("peek")
	advanceErrors      = newOpErrors("advance")
	consumeUntilErrors = newOpErrors("consume until")
	peekRunErrors      = newOpErrors("peek run")
	advanceRunErrors   = newOpErrors("advance run")
	clearWakeupErrors  = newOpErrors("clear wakeup")
)

func errorsOf(op string) *opErrors {
	switch op {
	case "poll":
		return &pollErrors
	case "begin":
		return &beginErrors
	case "peek":
		return &peekErrors
	case "advance":
		return &advanceErrors
	case "consume until":
		return &consumeUntilErrors
	case "peek run":
		return &peekRunErrors
	case "advance run":
		return &advanceRunErrors
	case "clear wakeup":
		return &clearWakeupErrors
	}
	return &consumeErrors
}

// TestErrorsOfEveryCall (errors_test.go) checks that every name given to
// enter has its own errors here.

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
	op    *opErrors // of the call inside; written and read by its holder only
}

// enter claims the reader for one Consume or Poll.
func (g *guard) enter(what string) error {
	for {
		s := g.state.Load()
		if s&guardClosed != 0 {
			return fmt.Errorf("ringbuf: %s: %w", what, os.ErrClosed)
		}
		if s&guardBusy != 0 {
			return errorsOf(what).busy
		}
		if g.state.CompareAndSwap(s, s|guardBusy) {
			g.op = errorsOf(what)
			return nil
		}
	}
}

// exit ends a call started by enter. It reports whether the reader was
// closed meanwhile, and whether the caller must release it because nobody
// else holds it any more.
func (g *guard) exit() (closed, release bool) {
	for {
		s := g.state.Load()
		ns := s &^ guardBusy
		if g.state.CompareAndSwap(s, ns) {
			closed = ns&guardClosed != 0
			return closed, closed && ns < guardShared
		}
	}
}

// close marks the reader closed and, in the same step, takes a shared hold
// on it, so that a call ending while Close wakes it cannot release the
// descriptor being written to. wake reports whether a call is running and
// must be woken. The caller ends the hold with exitShared, which tells it
// whether it has to release.
func (g *guard) close() (wake bool, err error) {
	for {
		s := g.state.Load()
		if s&guardClosed != 0 {
			return false, fmt.Errorf("ringbuf: close: %w", os.ErrClosed)
		}
		if g.state.CompareAndSwap(s, (s|guardClosed)+guardShared) {
			return s&guardBusy != 0, nil
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

// closeHook, when set by a test, runs in Close between marking the reader
// closed and waking a running call. It is nil in production.
var closeHook func()

// closed reports whether Close has been called; the drain loops check it
// between records so a handler that closes the reader sees no more calls.
func (g *guard) closed() bool { return g.state.Load()&guardClosed != 0 }

// releaser is a reader's teardown; an interface holding the reader's
// pointer, so passing it allocates nothing on the Consume path.
type releaser interface{ release() error }

// leave ends a Consume or Poll of r, releasing it if Close came in
// meanwhile.
func (g *guard) leave(err error, r releaser) error {
	op := g.op
	closed, release := g.exit()
	switch {
	case release:
		return errors.Join(err, op.closed, wrapClose(r.release()))
	case closed:
		return errors.Join(err, op.closed)
	}
	return err
}

// closeReader is Close for either reader: mark it closed while holding it,
// wake a call in progress through wake, and release unless that call is
// still running (it releases when it leaves).
func (g *guard) closeReader(wake *eventfd.FD, r releaser) error {
	running, err := g.close()
	if err != nil {
		return err
	}
	if closeHook != nil {
		closeHook()
	}
	if running {
		err = wrapClose(wake.Write(1))
	}
	if g.exitShared() {
		return errors.Join(err, wrapClose(r.release()))
	}
	return err
}

// wrapClose names the operation of an error in releasing a reader.
func wrapClose(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("ringbuf: close: %w", err)
}
