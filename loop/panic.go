package loop

import (
	"fmt"
	"runtime/debug"

	"github.com/eventpipe/eventpipe/poller"
)

// PanicError is returned by Run, RunOnce and RunNoWait when a callback
// panicked and no panic handler was set. The loop stays usable: run it
// again to go on.
type PanicError struct {
	Value any    // what the callback passed to panic
	Stack []byte // the goroutine's stack at the panic
	op    string // what panicked, for the text: "callback" when empty
}

// Error gives what panicked, the panic value and the stack.
func (e *PanicError) Error() string {
	op := e.op
	if op == "" {
		op = "callback"
	}
	return fmt.Sprintf("loop: %s panicked: %v\n%s", op, e.Value, e.Stack)
}

// Unwrap returns the panic value when it is an error, so errors.Is and
// errors.As see through to it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// catch is deferred around every callback the loop makes. It must be the
// deferred function itself for recover to work.
func (l *Loop) catch() {
	if v := recover(); v != nil {
		l.recovered(v)
	}
}

func (l *Loop) recovered(v any) {
	if l.panicHandler != nil {
		hv, ok := l.callHandler(v)
		if ok {
			return
		}
		// The handler panicked too. Letting that escape would unwind the
		// loop out of the middle of a phase, with the phase's own
		// bookkeeping (the timers due, the close callbacks not reached)
		// half done; ending the run as if there were no handler keeps
		// everything not reached for the next run.
		if l.panicErr == nil {
			l.panicErr = &PanicError{Value: hv, Stack: debug.Stack(), op: "panic handler"}
		}
		return
	}
	if l.panicErr == nil {
		// Still inside the deferred call: the stack shows the panic site.
		l.panicErr = &PanicError{Value: v, Stack: debug.Stack()}
	}
}

// callHandler passes v to the panic handler; ok is false, with the value it
// panicked with, if the handler panicked.
func (l *Loop) callHandler(v any) (hv any, ok bool) {
	defer func() {
		if !ok {
			hv = recover()
		}
	}()
	l.panicHandler(v)
	return nil, true
}

func (l *Loop) call(fn func()) {
	defer l.catch()
	fn()
}

func (l *Loop) callIO(fn func(poller.Events), ev poller.Events) {
	defer l.catch()
	fn(ev)
}
