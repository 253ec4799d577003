package reliability

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A shooter schedules one call of fn by one kind of loop callback each time
// it is called. It is called before Run or from a callback on the loop.
type shooter func(fn func())

// callbackKinds makes, for each kind of callback the loop runs, a shooter
// for it. Each shooter is independent of the others made for the same loop.
var callbackKinds = []struct {
	name string
	make func(t *testing.T, l *loop.Loop) shooter
}{
	{"timer", func(t *testing.T, l *loop.Loop) shooter {
		var cur func()
		tm := l.NewTimer(func() { cur() })
		return func(fn func()) { cur = fn; require.NoError(t, tm.Start(0, 0)) }
	}},
	{"watcher", func(t *testing.T, l *loop.Loop) shooter {
		p := socketPair(t)
		var cur func()
		var w *loop.Watcher
		w, err := l.Watch(p[0], poller.Readable, func(poller.Events) {
			var b [1]byte
			if _, err := unix.Read(p[0], b[:]); err != nil {
				t.Errorf("read: %v", err)
			}
			w.Stop()
			cur()
		})
		require.NoError(t, err)
		w.Stop()
		return func(fn func()) {
			cur = fn
			_, err := unix.Write(p[1], []byte{1})
			require.NoError(t, err)
			require.NoError(t, w.Start())
		}
	}},
	{"idle", hookShooter((*loop.Loop).NewIdle)},
	{"prepare", hookShooter((*loop.Loop).NewPrepare)},
	{"check", hookShooter((*loop.Loop).NewCheck)},
	{"async", func(t *testing.T, l *loop.Loop) shooter {
		return func(fn func()) {
			var a *loop.Async
			a, err := l.NewAsync(func() { a.Close(nil); fn() })
			require.NoError(t, err)
			require.NoError(t, a.Send())
		}
	}},
	{"post", func(t *testing.T, l *loop.Loop) shooter {
		return func(fn func()) { require.NoError(t, l.Post(fn)) }
	}},
	{"work done", func(t *testing.T, l *loop.Loop) shooter {
		return func(fn func()) {
			_, err := l.QueueWork(func() {}, func(err error) {
				if err != nil {
					t.Errorf("work done: %v", err)
				}
				fn()
			})
			require.NoError(t, err)
		}
	}},
	{"close", func(t *testing.T, l *loop.Loop) shooter {
		return func(fn func()) { l.NewIdle(func() {}).Close(fn) }
	}},
}

func hookShooter(mk func(*loop.Loop, func()) *loop.Hook) func(*testing.T, *loop.Loop) shooter {
	return func(t *testing.T, l *loop.Loop) shooter {
		var cur func()
		var h *loop.Hook
		h = mk(l, func() { h.Stop(); cur() })
		return func(fn func()) { cur = fn; require.NoError(t, h.Start()) }
	}
}

// heartbeat keeps the loop iterating every millisecond until done reports
// true. A prepare or check hook does not keep poll from blocking (as in
// libuv), so a hook that a panic left unreached runs after the next poll
// returns; the heartbeat makes sure one does.
func heartbeat(t *testing.T, l *loop.Loop, done func() bool) {
	var hb *loop.Timer
	hb = l.NewTimer(func() {
		if done() {
			hb.Stop()
		}
	})
	require.NoError(t, hb.Start(time.Millisecond, time.Millisecond))
}

// boom is a panic value that is an error, so errors.Is sees it through a
// *loop.PanicError.
type boom struct{ kind string }

func (b *boom) Error() string { return "boom in " + b.kind }

// runReportingPanics runs l until a Run returns nil and returns the values
// of every *PanicError the runs reported. Any other error fails the test.
func runReportingPanics(t *testing.T, l *loop.Loop, maxRuns int) []any {
	t.Helper()
	var seen []any
	for range maxRuns {
		err := run(t, l)
		if err == nil {
			return seen
		}
		vals := panicValues(err)
		require.NotEmpty(t, vals, "Run returned an error that reports no panic: %v", err)
		var pe *loop.PanicError
		require.ErrorAs(t, err, &pe)
		require.NotEmpty(t, pe.Stack)
		seen = append(seen, vals...)
	}
	t.Fatalf("loop still reporting panics after %d runs; saw %d", maxRuns, len(seen))
	return nil
}

// panicValues lists the values of every *loop.PanicError in err's tree.
func panicValues(err error) []any {
	var pe *loop.PanicError
	switch u := err.(type) {
	case nil:
		return nil
	case interface{ Unwrap() []error }:
		var vs []any
		for _, e := range u.Unwrap() {
			vs = append(vs, panicValues(e)...)
		}
		return vs
	default:
		if errors.As(err, &pe) {
			return []any{pe.Value}
		}
	}
	return nil
}

// A panic in any kind of callback, with or without a panic handler, loses
// nothing: the other callbacks of the same kind scheduled alongside it, and
// bystanders in other phases, each run exactly once; the panic is reported
// exactly once (to the handler, or as a *PanicError from Run that errors.Is
// sees through to the value); the panicking callback is not run again; and
// the loop runs new work afterwards and closes without leaks.
func TestPanicInEveryCallbackLosesNothing(t *testing.T) {
	for _, kind := range callbackKinds {
		for _, handled := range []bool{true, false} {
			name := kind.name + "/without handler"
			if handled {
				name = kind.name + "/with handler"
			}
			t.Run(name, func(t *testing.T) {
				checkLeaks(t)
				var handlerGot []any
				var opts []loop.Option
				if handled {
					opts = append(opts, loop.WithPanicHandler(func(v any) { handlerGot = append(handlerGot, v) }))
				}
				l := newLoop(t, opts...)
				val := &boom{kind: kind.name}

				var ran [3]int
				for i := range ran {
					shoot := kind.make(t, l)
					shoot(func() {
						ran[i]++
						if i == 1 {
							panic(val)
						}
					})
				}
				// Bystanders in other phases.
				var bystanders [3]int
				l.AfterFunc(time.Millisecond, func() { bystanders[0]++ })
				require.NoError(t, l.Post(func() { bystanders[1]++ }))
				var chk *loop.Hook
				chk = l.NewCheck(func() { bystanders[2]++; chk.Stop() })
				require.NoError(t, chk.Start())

				heartbeat(t, l, func() bool { return ran == [3]int{1, 1, 1} })

				var reported []any
				if handled {
					require.NoError(t, run(t, l))
					reported = handlerGot
				} else {
					reported = runReportingPanics(t, l, 5)
					require.Empty(t, handlerGot)
				}
				require.Equal(t, []any{val}, reported, "the panic must be reported exactly once")
				require.Equal(t, [3]int{1, 1, 1}, ran, "each callback of the kind runs exactly once")
				require.Equal(t, [3]int{1, 1, 1}, bystanders, "bystanders run exactly once")

				// The loop still works.
				after := 0
				require.NoError(t, l.Post(func() { after++ }))
				require.NoError(t, run(t, l))
				require.Equal(t, 1, after)
				require.False(t, l.Alive())
			})
		}
	}
}

// A panic in a work function (on a worker goroutine, where it would kill the
// process) becomes the *PanicError its done callback receives; the loop is
// not disturbed and the other work items complete normally.
func TestPanicInWorkFunction(t *testing.T) {
	for _, handled := range []bool{true, false} {
		t.Run(fmt.Sprintf("handler=%v", handled), func(t *testing.T) {
			checkLeaks(t)
			handlerCalls := 0
			var opts []loop.Option
			if handled {
				opts = append(opts, loop.WithPanicHandler(func(any) { handlerCalls++ }))
			}
			l := newLoop(t, opts...)
			val := &boom{kind: "work"}
			const n = 16
			var done [n]int
			var errs [n]error
			for i := range n {
				_, err := l.QueueWork(func() {
					if i%4 == 1 {
						panic(val)
					}
				}, func(err error) { done[i]++; errs[i] = err })
				require.NoError(t, err)
			}
			require.NoError(t, run(t, l))
			require.Zero(t, handlerCalls, "a work panic goes to done, not to the handler")
			for i := range n {
				require.Equal(t, 1, done[i], "done %d", i)
				if i%4 != 1 {
					require.NoError(t, errs[i])
					continue
				}
				var pe *loop.PanicError
				require.ErrorAs(t, errs[i], &pe)
				require.Same(t, val, pe.Value)
				require.ErrorIs(t, errs[i], val)
				require.True(t, strings.Contains(string(pe.Stack), "panic_test.go"), "stack shows the panic site")
			}
		})
	}
}

// A storm of panics: three callbacks of each kind re-arm themselves and
// panic on every call, 100 times each. With a handler every one of the 300
// panics reaches it and Run goes on; without one, every panic is reported by
// some Run (one or several per Run) and none is dropped.
func TestPanicStorm(t *testing.T) {
	const perShooter = 100
	for _, kind := range callbackKinds {
		for _, handled := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/handler=%v", kind.name, handled), func(t *testing.T) {
				checkLeaks(t)
				handlerCalls := 0
				var opts []loop.Option
				if handled {
					opts = append(opts, loop.WithPanicHandler(func(any) { handlerCalls++ }))
				}
				l := newLoop(t, opts...)
				var calls [3]int
				for i := range calls {
					shoot := kind.make(t, l)
					var fn func()
					fn = func() {
						calls[i]++
						if calls[i] < perShooter {
							shoot(fn)
						}
						panic(fmt.Sprintf("%s %d call %d", kind.name, i, calls[i]))
					}
					shoot(fn)
				}
				heartbeat(t, l, func() bool { return calls == [3]int{perShooter, perShooter, perShooter} })
				if handled {
					require.NoError(t, run(t, l))
					require.Equal(t, 3*perShooter, handlerCalls)
				} else {
					reported := runReportingPanics(t, l, 4*perShooter)
					require.Len(t, reported, 3*perShooter, "every panic is reported")
				}
				require.Equal(t, [3]int{perShooter, perShooter, perShooter}, calls)
			})
		}
	}
}

// Tasks posted while a panicking drain runs are not stranded: here the first
// task posts another from a different goroutine (as a worker posting a
// completion does) and panics, the second panics too. Each Run reports one
// panic, and the third runs the late task at once instead of polling for a
// wakeup that the interrupted drains had already consumed.
func TestPanicDoesNotStrandTasksPostedDuringIt(t *testing.T) {
	checkLeaks(t)
	l := newLoop(t)
	late := 0
	require.NoError(t, l.Post(func() {
		posted := make(chan error)
		go func() { posted <- l.Post(func() { late++ }) }()
		require.NoError(t, <-posted)
		panic("first")
	}))
	require.NoError(t, l.Post(func() { panic("second") }))
	require.Equal(t, []any{"first"}, panicValues(run(t, l)))
	require.Equal(t, []any{"second"}, panicValues(run(t, l)))
	require.NoError(t, run(t, l))
	require.Equal(t, 1, late)
}
