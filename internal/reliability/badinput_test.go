package reliability

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/eventfd"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// badCase is one misuse: call makes it and returns the error the API gave;
// want is what errors.Is must find in that error (nil: the call must
// succeed or do nothing, quietly).
type badCase struct {
	name string
	want error
	call func(t *testing.T) error
}

// runBadCases runs each case in a subtest: a panic or an error errors.Is
// does not recognise fails it.
func runBadCases(t *testing.T, cases []badCase) {
	t.Helper()
	badCasesRun = 0
	defer func() {
		t.Logf("figures: %d cases, %d documented errors recognised by errors.Is, no panic", len(cases), badCasesRun)
	}()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if v := catch(func() { err = c.call(t) }); v != nil {
				t.Fatalf("panicked: %v", v)
			}
			if c.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, c.want, "got %q", err)
			badCasesRun++
		})
	}
}

// badCasesRun counts the cases that returned their documented error.
var badCasesRun int

// closedFD returns a descriptor number that is not open.
func closedFD(t *testing.T) int {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	require.NoError(t, err)
	require.NoError(t, unix.Close(fd))
	return fd
}

// regularFile returns a descriptor of a regular file, which epoll refuses.
func regularFile(t *testing.T) int {
	f, err := os.CreateTemp(t.TempDir(), "regular")
	require.NoError(t, err)
	fd, err := unix.Dup(int(f.Fd()))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// hugeFD is far beyond any descriptor the process has open.
const hugeFD = 1 << 30

func newEventfd(t *testing.T) *eventfd.FD {
	e, err := eventfd.New(0, eventfd.NonBlocking)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

func closedEventfd(t *testing.T) *eventfd.FD {
	e, err := eventfd.New(0, eventfd.NonBlocking)
	require.NoError(t, err)
	require.NoError(t, e.Close())
	return e
}

func newPoller(t *testing.T) *poller.Poller {
	p, err := poller.New()
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

func closedPoller(t *testing.T) *poller.Poller {
	p, err := poller.New()
	require.NoError(t, err)
	require.NoError(t, p.Close())
	return p
}

func closedQueue(t *testing.T) *async.Queue {
	q, err := async.NewQueue()
	require.NoError(t, err)
	require.NoError(t, q.Close())
	return q
}

func closedLoop(t *testing.T) *loop.Loop {
	l, err := loop.New()
	require.NoError(t, err)
	require.NoError(t, l.Close())
	return l
}

func noop()                    {}
func noopEvents(poller.Events) {}

// Bad input to eventfd, poller and async: every misuse gives an error that
// wraps the documented errno or sentinel, never a panic.
func TestBadInputLowerLayers(t *testing.T) {
	checkLeaks(t)
	runBadCases(t, []badCase{
		// eventfd
		{"eventfd.New unknown flags", unix.EINVAL, func(t *testing.T) error { _, err := eventfd.New(0, eventfd.Flags(0x4000)); return err }},
		{"eventfd.New initval over 2^32-1", unix.EINVAL, func(t *testing.T) error { _, err := eventfd.New(1<<32, 0); return err }},
		{"eventfd Write 2^64-1", unix.EINVAL, func(t *testing.T) error { return newEventfd(t).Write(1<<64 - 1) }},
		{"eventfd Read empty non-blocking", unix.EAGAIN, func(t *testing.T) error { _, err := newEventfd(t).Read(); return err }},
		{"eventfd Write overflow non-blocking", unix.EAGAIN, func(t *testing.T) error {
			e := newEventfd(t)
			require.NoError(t, e.Write(1<<64-2))
			return e.Write(1)
		}},
		{"eventfd Read after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedEventfd(t).Read(); return err }},
		{"eventfd Write after Close", os.ErrClosed, func(t *testing.T) error { return closedEventfd(t).Write(1) }},
		{"eventfd Close twice", os.ErrClosed, func(t *testing.T) error { return closedEventfd(t).Close() }},
		{"eventfd Fd after Close is -1", nil, func(t *testing.T) error { require.Equal(t, -1, closedEventfd(t).Fd()); return nil }},

		// poller
		{"poller Add fd -1", unix.EBADF, func(t *testing.T) error { return newPoller(t).Add(-1, poller.Readable, 1) }},
		{"poller Add closed fd", unix.EBADF, func(t *testing.T) error { return newPoller(t).Add(closedFD(t), poller.Readable, 1) }},
		{"poller Add huge fd", unix.EBADF, func(t *testing.T) error { return newPoller(t).Add(hugeFD, poller.Readable, 1) }},
		{"poller Add regular file", unix.EPERM, func(t *testing.T) error { return newPoller(t).Add(regularFile(t), poller.Readable, 1) }},
		{"poller Add itself", unix.EINVAL, func(t *testing.T) error { p := newPoller(t); return p.Add(p.Fd(), poller.Readable, 1) }},
		{"poller Add twice", unix.EEXIST, func(t *testing.T) error {
			p, e := newPoller(t), newEventfd(t)
			require.NoError(t, p.Add(e.Fd(), poller.Readable, 1))
			return p.Add(e.Fd(), poller.Readable, 2)
		}},
		{"poller Add Exclusive|OneShot", unix.EINVAL, func(t *testing.T) error {
			return newPoller(t).Add(newEventfd(t).Fd(), poller.Readable|poller.Exclusive|poller.OneShot, 1)
		}},
		{"poller Modify to Exclusive", unix.EINVAL, func(t *testing.T) error {
			p, e := newPoller(t), newEventfd(t)
			require.NoError(t, p.Add(e.Fd(), poller.Readable, 1))
			return p.Modify(e.Fd(), poller.Readable|poller.Exclusive, 1)
		}},
		{"poller Modify absent", unix.ENOENT, func(t *testing.T) error { return newPoller(t).Modify(newEventfd(t).Fd(), poller.Readable, 1) }},
		{"poller Delete absent", unix.ENOENT, func(t *testing.T) error { return newPoller(t).Delete(newEventfd(t).Fd()) }},
		{"poller Delete closed fd", unix.EBADF, func(t *testing.T) error { return newPoller(t).Delete(closedFD(t)) }},
		{"poller Wait nil slice", unix.EINVAL, func(t *testing.T) error { _, err := newPoller(t).Wait(nil, 0); return err }},
		{"poller Wait empty slice", unix.EINVAL, func(t *testing.T) error { _, err := newPoller(t).Wait([]poller.Event{}, 0); return err }},
		{"poller Add after Close", os.ErrClosed, func(t *testing.T) error { return closedPoller(t).Add(newEventfd(t).Fd(), poller.Readable, 1) }},
		{"poller Modify after Close", os.ErrClosed, func(t *testing.T) error { return closedPoller(t).Modify(0, poller.Readable, 1) }},
		{"poller Delete after Close", os.ErrClosed, func(t *testing.T) error { return closedPoller(t).Delete(0) }},
		{"poller Wait after Close", os.ErrClosed, func(t *testing.T) error {
			_, err := closedPoller(t).Wait(make([]poller.Event, 1), -1)
			return err
		}},
		{"poller Close twice", os.ErrClosed, func(t *testing.T) error { return closedPoller(t).Close() }},

		// async
		{"async Post nil", async.ErrNilTask, func(t *testing.T) error {
			q, err := async.NewQueue()
			require.NoError(t, err)
			defer q.Close()
			return q.Post(nil)
		}},
		{"async Post after Close", os.ErrClosed, func(t *testing.T) error { return closedQueue(t).Post(noop) }},
		{"async Wake after Close", os.ErrClosed, func(t *testing.T) error { return closedQueue(t).Wake() }},
		{"async Close twice", os.ErrClosed, func(t *testing.T) error { return closedQueue(t).Close() }},
		{"async Drain and Len after Close", nil, func(t *testing.T) error {
			q, err := async.NewQueue()
			require.NoError(t, err)
			ran := 0
			require.NoError(t, q.Post(func() { ran++ }))
			require.NoError(t, q.Close())
			require.Equal(t, 1, q.Len())
			require.Equal(t, 1, q.Drain(), "a task accepted before Close still runs")
			require.Equal(t, 0, q.Len())
			require.Equal(t, -1, q.Fd())
			require.Equal(t, 1, ran)
			return nil
		}},
	})
}

// Bad input to the loop: nil callbacks, negative durations, bad and closed
// descriptors, reentrant calls, and every handle used after its own Close
// and after the loop's Close. Each gives an error wrapping the documented
// errno or sentinel (ErrNilCallback, EINVAL, EBADF, EPERM, EEXIST, EBUSY,
// os.ErrClosed, ErrBusy), or is a documented no-op; none panics.
func TestBadInputLoop(t *testing.T) {
	checkLeaks(t)
	cases := []badCase{
		{"New WithWorkers(0)", unix.EINVAL, func(t *testing.T) error { _, err := loop.New(loop.WithWorkers(0)); return err }},
		{"New WithWorkers(-1)", unix.EINVAL, func(t *testing.T) error { _, err := loop.New(loop.WithWorkers(-1)); return err }},
		{"New WithPanicHandler(nil)", loop.ErrNilCallback, func(t *testing.T) error {
			_, err := loop.New(loop.WithPanicHandler(nil))
			return err
		}},
		{"New with a nil Option", unix.EINVAL, func(t *testing.T) error {
			l, err := loop.New(nil)
			if err == nil {
				l.Close()
			}
			return err
		}},

		// nil callbacks
		{"Post nil", loop.ErrNilCallback, func(t *testing.T) error { return newLoop(t).Post(nil) }},
		{"NewAsync nil", loop.ErrNilCallback, func(t *testing.T) error { _, err := newLoop(t).NewAsync(nil); return err }},
		{"Timer nil Start", loop.ErrNilCallback, func(t *testing.T) error { return newLoop(t).NewTimer(nil).Start(time.Millisecond, 0) }},
		{"AfterFunc nil fires and calls nothing", nil, func(t *testing.T) error {
			l := newLoop(t)
			tm := l.AfterFunc(time.Millisecond, nil)
			require.True(t, tm.IsActive())
			require.NoError(t, run(t, l))
			require.False(t, tm.IsActive())
			return nil
		}},
		{"Idle nil Start", loop.ErrNilCallback, func(t *testing.T) error { return newLoop(t).NewIdle(nil).Start() }},
		{"Prepare nil Start", loop.ErrNilCallback, func(t *testing.T) error { return newLoop(t).NewPrepare(nil).Start() }},
		{"Check nil Start", loop.ErrNilCallback, func(t *testing.T) error { return newLoop(t).NewCheck(nil).Start() }},
		{"Watch nil", loop.ErrNilCallback, func(t *testing.T) error {
			_, err := newLoop(t).Watch(newEventfd(t).Fd(), poller.Readable, nil)
			return err
		}},
		{"QueueWork nil work", loop.ErrNilCallback, func(t *testing.T) error { _, err := newLoop(t).QueueWork(nil, func(error) {}); return err }},
		{"QueueWork nil done runs", nil, func(t *testing.T) error {
			l := newLoop(t)
			ran := false
			_, err := l.QueueWork(func() { ran = true }, nil)
			require.NoError(t, err)
			require.NoError(t, run(t, l))
			require.True(t, ran)
			return nil
		}},
		{"Close(nil) callbacks", nil, func(t *testing.T) error {
			l := newLoop(t)
			l.NewTimer(noop).Close(nil)
			l.NewIdle(noop).Close(nil)
			return run(t, l)
		}},

		// negative durations
		{"Timer Start negative timeout", unix.EINVAL, func(t *testing.T) error { return newLoop(t).NewTimer(noop).Start(-time.Nanosecond, 0) }},
		{"Timer Start negative repeat", unix.EINVAL, func(t *testing.T) error { return newLoop(t).NewTimer(noop).Start(0, -time.Second) }},
		{"AfterFunc negative fires on the next pass", nil, func(t *testing.T) error {
			l := newLoop(t)
			fired := false
			tm := l.AfterFunc(-time.Second, func() { fired = true })
			require.True(t, tm.IsActive())
			require.Zero(t, tm.DueIn())
			_, err := l.RunNoWait()
			require.NoError(t, err)
			require.True(t, fired)
			return nil
		}},
		{"Timer SetRepeat negative is zero", nil, func(t *testing.T) error {
			tm := newLoop(t).NewTimer(noop)
			tm.SetRepeat(-time.Second)
			require.Zero(t, tm.Repeat())
			return nil
		}},
		{"Timer Again never started", unix.EINVAL, func(t *testing.T) error { return newLoop(t).NewTimer(noop).Again() }},

		// descriptors
		{"Watch fd -1", unix.EBADF, func(t *testing.T) error { _, err := newLoop(t).Watch(-1, poller.Readable, noopEvents); return err }},
		{"Watch closed fd", unix.EBADF, func(t *testing.T) error {
			_, err := newLoop(t).Watch(closedFD(t), poller.Readable, noopEvents)
			return err
		}},
		{"Watch huge fd", unix.EBADF, func(t *testing.T) error { _, err := newLoop(t).Watch(hugeFD, poller.Readable, noopEvents); return err }},
		{"Watch regular file", unix.EPERM, func(t *testing.T) error {
			_, err := newLoop(t).Watch(regularFile(t), poller.Readable, noopEvents)
			return err
		}},
		{"Watch the loop's own fd", unix.EINVAL, func(t *testing.T) error {
			l := newLoop(t)
			_, err := l.Watch(l.Fd(), poller.Readable, noopEvents)
			return err
		}},
		{"Watch twice", unix.EEXIST, func(t *testing.T) error {
			l, e := newLoop(t), newEventfd(t)
			_, err := l.Watch(e.Fd(), poller.Readable, noopEvents)
			require.NoError(t, err)
			_, err = l.Watch(e.Fd(), poller.Readable, noopEvents)
			return err
		}},
		{"Watch Exclusive|OneShot", unix.EINVAL, func(t *testing.T) error {
			_, err := newLoop(t).Watch(newEventfd(t).Fd(), poller.Readable|poller.Exclusive|poller.OneShot, noopEvents)
			return err
		}},
		{"Watcher Modify to Exclusive", unix.EINVAL, func(t *testing.T) error {
			w, err := newLoop(t).Watch(newEventfd(t).Fd(), poller.Readable, noopEvents)
			require.NoError(t, err)
			return w.Modify(poller.Readable | poller.Exclusive)
		}},
		{"failed Watch leaves the fd watchable", nil, func(t *testing.T) error {
			l, e := newLoop(t), newEventfd(t)
			_, err := l.Watch(e.Fd(), poller.Readable|poller.Exclusive|poller.OneShot, noopEvents)
			require.ErrorIs(t, err, unix.EINVAL)
			_, err = l.Watch(e.Fd(), poller.Readable, noopEvents)
			return err
		}},

		// reentrancy
		{"Run from a callback", unix.EBUSY, func(t *testing.T) error {
			l := newLoop(t)
			var inner error
			require.NoError(t, l.Post(func() { inner = l.Run(t.Context()) }))
			require.NoError(t, run(t, l))
			return inner
		}},
		{"RunOnce from a callback", unix.EBUSY, func(t *testing.T) error {
			l := newLoop(t)
			var inner error
			require.NoError(t, l.Post(func() { _, inner = l.RunOnce() }))
			require.NoError(t, run(t, l))
			return inner
		}},
		{"Close from a callback", unix.EBUSY, func(t *testing.T) error {
			l := newLoop(t)
			var inner error
			require.NoError(t, l.Post(func() { inner = l.Close() }))
			require.NoError(t, run(t, l))
			return inner
		}},
		{"Work Cancel after it ran", loop.ErrBusy, func(t *testing.T) error {
			l := newLoop(t)
			w, err := l.QueueWork(noop, nil)
			require.NoError(t, err)
			require.NoError(t, run(t, l))
			return w.Cancel()
		}},
	}

	// Every handle after its own Close.
	afterHandleClose := func(name string, mk func(t *testing.T, l *loop.Loop) (func(func()), map[string]func() error, map[string]func())) {
		cases = append(cases, badCase{name + " used after its Close", nil, func(t *testing.T) error {
			l := newLoop(t)
			closeIt, failing, quiet := mk(t, l)
			closed := 0
			closeIt(func() { closed++ })
			closeIt(func() { closed += 100 }) // a second Close is ignored
			for what, call := range failing {
				err := call()
				require.ErrorIs(t, err, os.ErrClosed, "%s %s after Close: %v", name, what, err)
				badCasesRun++
			}
			for what, call := range quiet {
				require.NotPanics(t, call, "%s %s after Close", name, what)
			}
			require.NoError(t, run(t, l))
			require.Equal(t, 1, closed, "close callback runs once")
			for what, call := range failing {
				require.ErrorIs(t, call(), os.ErrClosed, "%s %s once closed", name, what)
			}
			return nil
		}})
	}
	handleQuiet := func(h interface {
		IsActive() bool
		IsClosing() bool
		Ref()
		Unref()
		HasRef() bool
	}) map[string]func() {
		return map[string]func(){
			"IsActive":  func() { require.False(t, h.IsActive()) },
			"IsClosing": func() { require.True(t, h.IsClosing()) },
			"Ref":       h.Ref,
			"Unref":     h.Unref,
			"HasRef":    func() { _ = h.HasRef() },
		}
	}
	afterHandleClose("Timer", func(t *testing.T, l *loop.Loop) (func(func()), map[string]func() error, map[string]func()) {
		tm := l.NewTimer(noop)
		require.NoError(t, tm.Start(time.Hour, time.Hour))
		q := handleQuiet(tm)
		q["Stop"] = tm.Stop
		q["SetRepeat"] = func() { tm.SetRepeat(time.Second) }
		q["DueIn"] = func() { require.Zero(t, tm.DueIn()) }
		return tm.Close, map[string]func() error{
			"Start": func() error { return tm.Start(time.Millisecond, 0) },
			"Again": tm.Again,
		}, q
	})
	afterHandleClose("Hook", func(t *testing.T, l *loop.Loop) (func(func()), map[string]func() error, map[string]func()) {
		h := l.NewCheck(noop)
		require.NoError(t, h.Start())
		q := handleQuiet(h)
		q["Stop"] = h.Stop
		return h.Close, map[string]func() error{"Start": h.Start}, q
	})
	afterHandleClose("Async", func(t *testing.T, l *loop.Loop) (func(func()), map[string]func() error, map[string]func()) {
		a, err := l.NewAsync(noop)
		require.NoError(t, err)
		return a.Close, map[string]func() error{"Send": a.Send}, handleQuiet(a)
	})
	afterHandleClose("Watcher", func(t *testing.T, l *loop.Loop) (func(func()), map[string]func() error, map[string]func()) {
		w, err := l.Watch(newEventfd(t).Fd(), poller.Readable, noopEvents)
		require.NoError(t, err)
		q := handleQuiet(w)
		q["Stop"] = w.Stop
		q["Fd"] = func() { _ = w.Fd() }
		return w.Close, map[string]func() error{
			"Modify": func() error { return w.Modify(poller.Writable) },
			"Start":  w.Start,
		}, q
	})

	// Everything after the loop's Close, including handles made before it.
	cases = append(cases, badCase{"loop used after its Close", nil, func(t *testing.T) error {
		l, err := loop.New()
		require.NoError(t, err)
		e := newEventfd(t)
		tm := l.NewTimer(noop)
		require.NoError(t, tm.Start(time.Hour, 0))
		hook := l.NewIdle(noop)
		a, err := l.NewAsync(noop)
		require.NoError(t, err)
		w, err := l.Watch(e.Fd(), poller.Readable, noopEvents)
		require.NoError(t, err)
		var workErr error
		work, err := l.QueueWork(func() { time.Sleep(time.Millisecond) }, func(err error) { workErr = err })
		require.NoError(t, err)
		require.NoError(t, l.Close())
		require.True(t, errors.Is(workErr, loop.ErrCanceled) || workErr == nil, "work done got %v", workErr)

		failing := map[string]func() error{
			"Run":         func() error { return l.Run(t.Context()) },
			"RunOnce":     func() error { _, err := l.RunOnce(); return err },
			"RunNoWait":   func() error { _, err := l.RunNoWait(); return err },
			"Close":       l.Close,
			"Post":        func() error { return l.Post(noop) },
			"NewAsync":    func() error { _, err := l.NewAsync(noop); return err },
			"Watch":       func() error { _, err := l.Watch(e.Fd(), poller.Readable, noopEvents); return err },
			"QueueWork":   func() error { _, err := l.QueueWork(noop, nil); return err },
			"new Timer":   func() error { return l.NewTimer(noop).Start(time.Millisecond, 0) },
			"new Hook":    func() error { return l.NewIdle(noop).Start() },
			"old Timer":   func() error { return tm.Start(time.Millisecond, 0) },
			"old Again":   tm.Again,
			"old Hook":    hook.Start,
			"old Async":   a.Send,
			"old Modify":  func() error { return w.Modify(poller.Writable) },
			"old Watcher": w.Start,
		}
		for what, call := range failing {
			var err error
			require.NotPanics(t, func() { err = call() }, what)
			require.ErrorIs(t, err, os.ErrClosed, "%s after the loop's Close: %v", what, err)
			badCasesRun++
		}
		quiet := map[string]func(){
			"Stop":           l.Stop,
			"Alive":          func() { require.False(t, l.Alive()) },
			"Stats":          func() { _ = l.Stats() },
			"Fd":             func() { require.Equal(t, -1, l.Fd()) },
			"BackendTimeout": func() { _ = l.BackendTimeout() },
			"Now":            func() { _ = l.Now() },
			"UpdateTime":     l.UpdateTime,
			"AfterFunc":      func() { require.False(t, l.AfterFunc(time.Millisecond, noop).IsActive()) },
			"old Stop":       func() { tm.Stop(); hook.Stop(); w.Stop() },
			"old Close":      func() { tm.Close(nil); hook.Close(nil); a.Close(nil); w.Close(nil) },
			"Work Cancel":    func() { require.ErrorIs(t, work.Cancel(), loop.ErrBusy) },
		}
		for what, call := range quiet {
			require.NotPanics(t, call, what)
		}
		return nil
	}})
	runBadCases(t, cases)
}

// Bad input to the ring readers and the dispatcher: descriptors that are not
// BPF maps, maps of the wrong type, impossible options, use after Close, a
// nil callback, and a re-entered Consume. Each gives an error wrapping the
// documented errno or sentinel, never a panic.
func TestBadInputRingbuf(t *testing.T) {
	bpftest.Require(t)
	checkLeaks(t)
	perfMap := func(t *testing.T, entries int) int {
		m, err := bpftest.NewPerfEventArray(entries)
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m.FD()
	}
	ringMap := func(t *testing.T) *bpftest.Map {
		m, err := bpftest.NewRingBuf(os.Getpagesize())
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m
	}
	arrayMap := func(t *testing.T) int {
		m, err := bpftest.NewArray(4, 4)
		require.NoError(t, err)
		t.Cleanup(func() { m.Close() })
		return m.FD()
	}
	newPerf := func(t *testing.T, fd int, o ringbuf.PerfOptions) error {
		r, err := ringbuf.NewPerfReader(fd, o)
		if err == nil {
			r.Close()
		}
		return err
	}
	newRing := func(t *testing.T, fd int) error {
		r, err := ringbuf.NewRingReader(fd)
		if err == nil {
			r.Close()
		}
		return err
	}
	closedPerf := func(t *testing.T) *ringbuf.PerfReader {
		r, err := ringbuf.NewPerfReader(perfMap(t, 0), ringbuf.PerfOptions{PagesPerCPU: 1})
		require.NoError(t, err)
		require.NoError(t, r.Close())
		return r
	}
	closedRing := func(t *testing.T) *ringbuf.RingReader {
		r, err := ringbuf.NewRingReader(ringMap(t).FD())
		require.NoError(t, err)
		require.NoError(t, r.Close())
		return r
	}
	var cpus []int
	{
		r, err := ringbuf.NewPerfReader(perfMap(t, 0), ringbuf.PerfOptions{PagesPerCPU: 1})
		require.NoError(t, err)
		cpus = r.CPUs()
		require.NoError(t, r.Close())
	}
	maxCPU := cpus[len(cpus)-1]

	runBadCases(t, []badCase{
		{"NewPerfReader fd -1", unix.EBADF, func(t *testing.T) error { return newPerf(t, -1, ringbuf.PerfOptions{}) }},
		{"NewPerfReader closed fd", unix.EBADF, func(t *testing.T) error { return newPerf(t, closedFD(t), ringbuf.PerfOptions{}) }},
		{"NewPerfReader huge fd", unix.EBADF, func(t *testing.T) error { return newPerf(t, hugeFD, ringbuf.PerfOptions{}) }},
		{"NewPerfReader an eventfd", unix.EINVAL, func(t *testing.T) error { return newPerf(t, newEventfd(t).Fd(), ringbuf.PerfOptions{}) }},
		{"NewPerfReader a ringbuf map", unix.EINVAL, func(t *testing.T) error { return newPerf(t, ringMap(t).FD(), ringbuf.PerfOptions{}) }},
		{"NewPerfReader an array map", unix.EINVAL, func(t *testing.T) error { return newPerf(t, arrayMap(t), ringbuf.PerfOptions{}) }},
		{"NewPerfReader PagesPerCPU 3", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{PagesPerCPU: 3}) }},
		{"NewPerfReader PagesPerCPU -1", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{PagesPerCPU: -1}) }},
		{"NewPerfReader WakeupEvents -1", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{WakeupEvents: -1}) }},
		{"NewPerfReader Watermark -1", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{Watermark: -1}) }},
		{"NewPerfReader Watermark = ring", unix.EINVAL, func(t *testing.T) error {
			return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{PagesPerCPU: 1, Watermark: os.Getpagesize()})
		}},
		{"NewPerfReader WakeupEvents and Watermark", unix.EINVAL, func(t *testing.T) error {
			return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{WakeupEvents: 2, Watermark: 64})
		}},
		{"NewPerfReader empty CPUs", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{CPUs: []int{}}) }},
		{"NewPerfReader CPU -1", unix.EINVAL, func(t *testing.T) error { return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{CPUs: []int{-1}}) }},
		{"NewPerfReader CPU twice", unix.EINVAL, func(t *testing.T) error {
			return newPerf(t, perfMap(t, 0), ringbuf.PerfOptions{CPUs: []int{cpus[0], cpus[0]}})
		}},
		{"NewPerfReader CPU beyond the array", unix.E2BIG, func(t *testing.T) error {
			return newPerf(t, perfMap(t, maxCPU+1), ringbuf.PerfOptions{CPUs: []int{maxCPU + 1}})
		}},
		{"NewPerfReader array smaller than the CPUs", unix.E2BIG, func(t *testing.T) error {
			if len(cpus) < 2 {
				t.Skip("one CPU: every array is big enough")
			}
			return newPerf(t, perfMap(t, 1), ringbuf.PerfOptions{})
		}},
		{"NewPerfReader a CPU that does not exist", unix.EINVAL, func(t *testing.T) error {
			return newPerf(t, perfMap(t, 4096), ringbuf.PerfOptions{CPUs: []int{4095}})
		}},
		{"PerfReader Consume after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedPerf(t).Consume(ringbuf.Handler{}); return err }},
		{"PerfReader Poll after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedPerf(t).Poll(-1, ringbuf.Handler{}); return err }},
		{"PerfReader Close twice", os.ErrClosed, func(t *testing.T) error { return closedPerf(t).Close() }},
		{"PerfReader Fd, Stats, CPUs after Close", nil, func(t *testing.T) error {
			r := closedPerf(t)
			require.Equal(t, -1, r.Fd())
			_ = r.Stats()
			require.NotEmpty(t, r.CPUs())
			return nil
		}},

		{"NewRingReader fd -1", unix.EBADF, func(t *testing.T) error { return newRing(t, -1) }},
		{"NewRingReader closed fd", unix.EBADF, func(t *testing.T) error { return newRing(t, closedFD(t)) }},
		{"NewRingReader an eventfd", unix.EINVAL, func(t *testing.T) error { return newRing(t, newEventfd(t).Fd()) }},
		{"NewRingReader a perf event array", unix.EINVAL, func(t *testing.T) error { return newRing(t, perfMap(t, 0)) }},
		{"NewRingReader an array map", unix.EINVAL, func(t *testing.T) error { return newRing(t, arrayMap(t)) }},
		{"RingReader Consume after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedRing(t).Consume(func([]byte) {}); return err }},
		{"RingReader Poll after Close", os.ErrClosed, func(t *testing.T) error { _, err := closedRing(t).Poll(-1, func([]byte) {}); return err }},
		{"RingReader Close twice", os.ErrClosed, func(t *testing.T) error { return closedRing(t).Close() }},
		{"RingReader Fd, Available, Size, Stats after Close", nil, func(t *testing.T) error {
			r := closedRing(t)
			require.Equal(t, -1, r.Fd())
			require.Zero(t, r.Available())
			require.Equal(t, os.Getpagesize(), r.Size())
			_ = r.Stats()
			return nil
		}},
		{"RingReader Consume nil callback", nil, func(t *testing.T) error {
			m := ringMap(t)
			p, err := bpftest.NewRingProducer(m, 8)
			require.NoError(t, err)
			defer p.Close()
			r, err := ringbuf.NewRingReader(m.FD())
			require.NoError(t, err)
			defer r.Close()
			require.NoError(t, p.Emit(make([]byte, 8)))
			_, err = r.Consume(nil)
			return err
		}},
		{"RingReader Consume re-entered", unix.EBUSY, func(t *testing.T) error {
			m := ringMap(t)
			p, err := bpftest.NewRingProducer(m, 8)
			require.NoError(t, err)
			defer p.Close()
			r, err := ringbuf.NewRingReader(m.FD())
			require.NoError(t, err)
			defer r.Close()
			require.NoError(t, p.Emit(make([]byte, 8)))
			var inner error
			_, err = r.Consume(func([]byte) { _, inner = r.Consume(func([]byte) {}) })
			require.NoError(t, err)
			return inner
		}},

		{"Dispatch nil record", ringbuf.ErrShortRecord, func(t *testing.T) error { return ringbuf.NewDispatcher().Dispatch(0, nil) }},
		{"Dispatch 3-byte record", ringbuf.ErrShortRecord, func(t *testing.T) error {
			return ringbuf.NewDispatcher().Dispatch(0, []byte{0, 0, 0})
		}},
		{"Dispatch unknown category", ringbuf.ErrUnknownCategory, func(t *testing.T) error {
			d := ringbuf.NewDispatcher()
			d.Register(func(int, []byte) {})
			return d.Dispatch(0, []byte{1, 0, 0, 0})
		}},
		{"Dispatch category 2^32-1", ringbuf.ErrUnknownCategory, func(t *testing.T) error {
			return ringbuf.NewDispatcher().Dispatch(-1, []byte{0xff, 0xff, 0xff, 0xff, 1})
		}},
		{"Dispatch to a nil handler drops", nil, func(t *testing.T) error {
			d := ringbuf.NewDispatcher()
			d.Register(nil)
			d.Sample(0, []byte{1})
			d.Record(nil)
			return d.Dispatch(0, []byte{0, 0, 0, 0, 9})
		}},
	})
}
