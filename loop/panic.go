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
}

// Error gives the panic value and the stack.
func (e *PanicError) Error() string {
	return fmt.Sprintf("loop: callback panicked: %v\n%s", e.Value, e.Stack)
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
		l.panicHandler(v)
		return
	}
	if l.panicErr == nil {
		// Still inside the deferred call: the stack shows the panic site.
		l.panicErr = &PanicError{Value: v, Stack: debug.Stack()}
	}
}

func (l *Loop) call(fn func()) {
	defer l.catch()
	fn()
}

func (l *Loop) callIO(fn func(poller.Events), ev poller.Events) {
	defer l.catch()
	fn(ev)
}
