package loop_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// panicCase arms one kind of callback to call cb whenever it runs, and
// returns finish, which releases the handle so the loop can end.
type panicCase struct {
	name string
	arm  func(t *testing.T, l *loop.Loop, efd int, cb func()) (finish func())
}

var panicCases = []panicCase{
	{"timer", func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		l.AfterFunc(0, cb)
		return func() {}
	}},
	{"idle", panicHook((*loop.Loop).NewIdle)},
	{"prepare", panicHook((*loop.Loop).NewPrepare)},
	{"check", panicHook((*loop.Loop).NewCheck)},
	{"watcher", func(t *testing.T, l *loop.Loop, efd int, cb func()) func() {
		signal(t, efd)
		w, err := l.Watch(efd, poller.Readable, func(poller.Events) { cb() })
		require.NoError(t, err)
		return func() { w.Stop(); drain(efd) }
	}},
	{"async", func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		a, err := l.NewAsync(cb)
		require.NoError(t, err)
		require.NoError(t, a.Send())
		return func() { a.Close(nil) }
	}},
	{"post", func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		require.NoError(t, l.Post(cb))
		return func() {}
	}},
	{"work done", func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		_, err := l.QueueWork(func() {}, func(error) { cb() })
		require.NoError(t, err)
		return func() {}
	}},
	{"close", func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		l.NewTimer(func() {}).Close(cb)
		return func() {}
	}},
}

func panicHook(mk func(*loop.Loop, func()) *loop.Hook) func(*testing.T, *loop.Loop, int, func()) func() {
	return func(t *testing.T, l *loop.Loop, _ int, cb func()) func() {
		h := mk(l, cb)
		require.NoError(t, h.Start())
		return h.Stop
	}
}

// Without a panic handler, a panicking callback makes Run return a
// *PanicError with the value and the panicking stack; the loop stays
// consistent and the next Run carries on with what is left.
func TestPanicWithoutHandlerReturnsPanicError(t *testing.T) {
	for _, c := range panicCases {
		t.Run(c.name, func(t *testing.T) {
			efd := eventFD(t)
			l := newLoop(t)
			val := "boom in " + c.name
			calls := 0
			finish := c.arm(t, l, efd, func() {
				if calls++; calls == 1 {
					panic(val)
				}
			})
			rest := 0
			l.AfterFunc(time.Millisecond, func() { rest++ })

			err := runErr(t, l)
			var pe *loop.PanicError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, val, pe.Value)
			require.Contains(t, string(pe.Stack), "panic_test.go", "the stack is the panicking goroutine's")
			require.NotEmpty(t, pe.Error())
			require.Equal(t, 1, calls)

			finish()
			run(t, l)
			require.Equal(t, 1, rest, "a timer armed before the panic fires exactly once")
			require.False(t, l.Alive())
		})
	}
}

// With a panic handler, the handler gets the value and the same Run goes on:
// a timer that waits for the handler still fires and Run returns nil.
func TestPanicHandlerKeepsLoopRunning(t *testing.T) {
	for _, c := range panicCases {
		t.Run(c.name, func(t *testing.T) {
			efd := eventFD(t)
			var mu sync.Mutex
			var got []any
			var handled atomic.Bool
			l := newLoop(t, loop.WithPanicHandler(func(v any) {
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
				handled.Store(true)
			}))
			val := "handled boom in " + c.name
			calls := 0
			finish := c.arm(t, l, efd, func() {
				if calls++; calls == 1 {
					panic(val)
				}
			})
			after := 0
			var waiter *loop.Timer
			waiter = l.NewTimer(func() {
				if handled.Load() {
					after++
					finish()
					waiter.Stop()
				}
			})
			require.NoError(t, waiter.Start(time.Millisecond, time.Millisecond))

			run(t, l)
			mu.Lock()
			require.Equal(t, []any{val}, got)
			mu.Unlock()
			require.Equal(t, 1, after, "the loop stopped after the handled panic")
			require.GreaterOrEqual(t, calls, 1)
		})
	}
}

// Timers due in the same pass after a panicking one are not lost: they fire
// on the next Run, once.
func TestPanicInTimerLeavesLaterTimersForNextRun(t *testing.T) {
	l := newLoop(t)
	l.AfterFunc(0, func() { panic("first") })
	second := 0
	l.AfterFunc(0, func() { second++ })
	err := runErr(t, l)
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "first", pe.Value)
	require.Zero(t, second, "Run went on after the panic")
	require.True(t, l.Alive())
	run(t, l)
	require.Equal(t, 1, second)
}

// A repeating timer whose callback panicked is still armed.
func TestPanicInRepeatingTimerKeepsItArmed(t *testing.T) {
	panics := 0
	l := newLoop(t, loop.WithPanicHandler(func(any) { panics++ }))
	calls := 0
	var tm *loop.Timer
	tm = l.NewTimer(func() {
		calls++
		switch calls {
		case 1:
			panic("once")
		case 3:
			tm.Stop()
		}
	})
	require.NoError(t, tm.Start(time.Millisecond, time.Millisecond))
	run(t, l)
	require.Equal(t, 3, calls)
	require.Equal(t, 1, panics)
}

// Posted tasks queued behind a panicking one are neither lost nor run twice,
// and RunNoWait reports the panic too.
func TestPanicMidDrainKeepsLaterPosts(t *testing.T) {
	l := newLoop(t)
	ran := make([]int, 4)
	for i := range ran {
		require.NoError(t, l.Post(func() {
			ran[i]++
			if i == 1 {
				panic("post 1")
			}
		}))
	}
	_, err := l.RunNoWait()
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "post 1", pe.Value)
	run(t, l)
	require.Equal(t, []int{1, 1, 1, 1}, ran)
}

// Every panic without a handler reaches the caller: two callbacks that panic
// in the same pass are reported by two runs (or together by one), never one
// of them silently dropped.
func TestPanicsAreNeverLost(t *testing.T) {
	l := newLoop(t)
	l.AfterFunc(0, func() { panic("p1") })
	l.AfterFunc(0, func() { panic("p2") })
	var seen []any
	for range 3 {
		seen = append(seen, panicValues(runErr(t, l))...)
	}
	require.ElementsMatch(t, []any{"p1", "p2"}, seen)
	require.False(t, l.Alive())
}

// A panic in a work function becomes the error its done callback receives.
func TestWorkPanicBecomesDoneError(t *testing.T) {
	l := newLoop(t)
	var got error
	_, err := l.QueueWork(func() { panic("in work") }, func(err error) { got = err })
	require.NoError(t, err)
	run(t, l)
	var pe *loop.PanicError
	require.ErrorAs(t, got, &pe)
	require.Equal(t, "in work", pe.Value)
	require.Contains(t, string(pe.Stack), "panic_test.go")
}

// panicValues lists the values of every *PanicError in err's tree.
func panicValues(err error) []any {
	if err == nil {
		return nil
	}
	if pe, ok := err.(*loop.PanicError); ok {
		return []any{pe.Value}
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		var vs []any
		for _, e := range u.Unwrap() {
			vs = append(vs, panicValues(e)...)
		}
		return vs
	case interface{ Unwrap() error }:
		return panicValues(u.Unwrap())
	}
	return nil
}
