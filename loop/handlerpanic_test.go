package loop_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A panic handler that itself panics, inside the close phase, the timers or
// io dispatch: the run ends with a *PanicError for the handler's panic, as a
// panic with no handler would, and the callbacks of that phase not yet
// reached still run in the next run, in order. Before, the handler's panic
// escaped Run from the middle of the phase and stranded them (the close
// callbacks after it were lost; the timer pass's list was left half run).
func TestPanicHandlerThatPanics(t *testing.T) {
	phases := map[string]func(t *testing.T, l *loop.Loop, cb func(i int)){
		"close": func(t *testing.T, l *loop.Loop, cb func(i int)) {
			for i := range 3 {
				l.NewTimer(func() {}).Close(func() { cb(i) })
			}
		},
		"timers": func(t *testing.T, l *loop.Loop, cb func(i int)) {
			for i := range 3 {
				l.AfterFunc(0, func() { cb(i) })
			}
		},
		"io": func(t *testing.T, l *loop.Loop, cb func(i int)) {
			for i := range 3 {
				efd := eventFD(t)
				signal(t, efd)
				var w *loop.Watcher
				w, err := l.Watch(efd, poller.Readable, func(poller.Events) { w.Close(nil); cb(i) })
				require.NoError(t, err)
			}
		},
	}
	for name, setup := range phases {
		t.Run(name, func(t *testing.T) {
			handled := 0
			l := newLoop(t, loop.WithPanicHandler(func(v any) {
				handled++
				panic("handler: " + v.(string))
			}))
			var ran []int
			setup(t, l, func(i int) {
				ran = append(ran, i)
				if len(ran) == 1 {
					panic("first")
				}
			})
			err := runErr(t, l)
			var pe *loop.PanicError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "handler: first", pe.Value)
			require.Contains(t, pe.Error(), "loop: panic handler panicked: handler: first")
			require.Equal(t, 1, handled)
			require.Len(t, ran, 1, "callbacks after the panic ran in the same run")

			run(t, l)
			require.Len(t, ran, 3, "callbacks not reached were lost")
			if name != "io" { // io readiness has no order to keep
				require.Equal(t, []int{0, 1, 2}, ran)
			}
		})
	}
}

// A handler that does not panic keeps the run going, as before.
func TestPanicHandlerKeepsRunning(t *testing.T) {
	var got []any
	l := newLoop(t, loop.WithPanicHandler(func(v any) { got = append(got, v) }))
	ran := 0
	for range 3 {
		l.AfterFunc(time.Duration(0), func() { ran++; panic(ran) })
	}
	run(t, l)
	require.Equal(t, 3, ran)
	require.Equal(t, []any{1, 2, 3}, got)
}
