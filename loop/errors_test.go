package loop_test

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// The text of every error the loop returns names the package and the
// operation once, and errors.Is sees the errno or sentinel it wraps.
func TestErrorText(t *testing.T) {
	efd := eventFD(t)
	file, err := os.CreateTemp(t.TempDir(), "regular")
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	regular := int(file.Fd()) // the test's own: kept open until cleanup

	closed, err := loop.New()
	require.NoError(t, err)
	oldTimer := closed.NewTimer(func() {})
	oldHook := closed.NewCheck(func() {})
	oldAsync, err := closed.NewAsync(func() {})
	require.NoError(t, err)
	require.NoError(t, closed.Close())

	l := newLoop(t, loop.WithQueueLimit(1))
	require.NoError(t, l.Post(func() {}))
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	_, second := l.Watch(efd, poller.Readable, func(poller.Events) {})
	w.Close(nil)
	closedTimer := l.NewTimer(func() {})
	closedTimer.Close(nil)
	closedWatcher, err := l.Watch(eventFD(t), poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	closedWatcher.Close(nil)
	busyWork, err := l.QueueWork(func() { time.Sleep(10 * time.Millisecond) }, nil)
	require.NoError(t, err)
	run(t, l)
	var runErr, closeErr, shutdownErr error
	require.NoError(t, l.Post(func() {
		runErr = l.Run(context.Background())
		closeErr = l.Close()
		shutdownErr = l.Shutdown(context.Background())
	}))
	run(t, l)

	_, newNil := loop.New(nil)
	_, workers := loop.New(loop.WithWorkers(0))
	_, handler := loop.New(loop.WithPanicHandler(nil))
	_, budget := loop.New(loop.WithTaskBudget(-1))
	_, limit := loop.New(loop.WithQueueLimit(-1))
	_, asyncNil := l.NewAsync(nil)
	_, asyncClosed := closed.NewAsync(func() {})
	_, watchNil := l.Watch(efd, poller.Readable, nil)
	_, watchNeg := l.Watch(-1, poller.Readable, func(poller.Events) {})
	_, watchWide := l.Watch(1<<32+efd, poller.Readable, func(poller.Events) {})
	_, watchNone := l.Watch(efd, 0, func(poller.Events) {})
	_, watchFlagsOnly := l.Watch(efd, poller.EdgeTriggered, func(poller.Events) {})
	_, watchUnknown := l.Watch(efd, 1<<20, func(poller.Events) {})
	_, watchRegular := l.Watch(regular, poller.Readable, func(poller.Events) {})
	_, watchClosed := closed.Watch(efd, poller.Readable, func(poller.Events) {})
	_, workNil := l.QueueWork(nil, nil)
	_, workCtxNil := l.QueueWorkContext(nil, nil)
	_, workClosed := closed.QueueWork(func() {}, nil)
	_, workCtxClosed := closed.QueueWorkContext(func(context.Context) {}, nil)
	_, runOnceClosed := closed.RunOnce()
	_, runNoWaitClosed := closed.RunNoWait()
	wModify := w.Modify(poller.Readable)
	wStart := w.Start()
	tm := l.NewTimer(nil)

	for _, c := range []struct {
		err  error
		text string
		is   error
	}{
		{newNil, "loop: new: option 0 is nil", unix.EINVAL},
		{workers, "loop: WithWorkers(0): need at least one worker", unix.EINVAL},
		{handler, "loop: WithPanicHandler: nil callback", loop.ErrNilCallback},
		{budget, "loop: WithTaskBudget(-1): negative", unix.EINVAL},
		{limit, "loop: WithQueueLimit(-1): negative", unix.EINVAL},

		{l.Post(nil), "loop: post: nil callback", loop.ErrNilCallback},
		{closed.Post(func() {}), "loop: post: closed", os.ErrClosed},
		{l.PostContext(context.Background(), nil), "loop: post context: nil callback", loop.ErrNilCallback},
		{closed.PostContext(context.Background(), func() {}), "loop: post context: closed", os.ErrClosed},

		{runErr, "loop: run: already running", unix.EBUSY},
		{closed.Run(context.Background()), "loop: run: closed", os.ErrClosed},
		{runOnceClosed, "loop: run once: closed", os.ErrClosed},
		{runNoWaitClosed, "loop: run nowait: closed", os.ErrClosed},
		{closeErr, "loop: close: loop is running", unix.EBUSY},
		{shutdownErr, "loop: shutdown: loop is running", unix.EBUSY},
		{closed.Close(), "loop: close: already closed", os.ErrClosed},
		{closed.Shutdown(context.Background()), "loop: shutdown: already closed", os.ErrClosed},

		{asyncNil, "loop: new async: nil callback", loop.ErrNilCallback},
		{asyncClosed, "loop: new async: closed", os.ErrClosed},
		{oldAsync.Send(), "loop: async send: closed", os.ErrClosed},

		{watchNil, "loop: watch fd " + itoa(efd) + ": nil callback", loop.ErrNilCallback},
		{watchNeg, "loop: watch fd -1: not a descriptor number", unix.EBADF},
		{watchWide, "loop: watch fd " + itoa(1<<32+efd) + ": not a descriptor number", unix.EBADF},
		{watchNone, "loop: watch fd " + itoa(efd) + ": no event asked for (0)", unix.EINVAL},
		{watchFlagsOnly, "loop: watch fd " + itoa(efd) + ": no event asked for (EdgeTriggered)", unix.EINVAL},
		{watchUnknown, "loop: watch fd " + itoa(efd) + ": unknown event bits 0x100000", unix.EINVAL},
		{second, "loop: watch fd " + itoa(efd) + ": already watched", unix.EEXIST},
		{watchRegular, "loop: watch fd " + itoa(regular) + ": epoll_ctl: operation not permitted", unix.EPERM},
		{watchClosed, "loop: watch fd " + itoa(efd) + ": closed", os.ErrClosed},
		{wModify, "loop: watcher modify fd " + itoa(efd) + ": closed", os.ErrClosed},
		{wStart, "loop: watcher start fd " + itoa(efd) + ": closed", os.ErrClosed},
		{closedWatcher.Modify(0), "loop: watcher modify fd " + itoa(closedWatcher.Fd()) + ": closed", os.ErrClosed},

		{tm.Start(0, 0), "loop: timer start: nil callback", loop.ErrNilCallback},
		{l.NewTimer(func() {}).Start(time.Millisecond, -time.Millisecond), "loop: timer start(1ms, -1ms): negative duration", unix.EINVAL},
		{closedTimer.Start(0, 0), "loop: timer start: closed", os.ErrClosed},
		{oldTimer.Start(0, 0), "loop: timer start: closed", os.ErrClosed},
		{l.NewTimer(func() {}).Again(), "loop: timer again: never started", unix.EINVAL},
		{closedTimer.Again(), "loop: timer again: closed", os.ErrClosed},
		{l.NewIdle(nil).Start(), "loop: idle start: nil callback", loop.ErrNilCallback},
		{l.NewPrepare(nil).Start(), "loop: prepare start: nil callback", loop.ErrNilCallback},
		{oldHook.Start(), "loop: check start: closed", os.ErrClosed},
		{l.NewSignal(nil).Start(syscall.SIGUSR1), "loop: signal start: nil callback", loop.ErrNilCallback},
		{l.NewSignal(func(os.Signal) {}).Start(), "loop: signal start: no signal", unix.EINVAL},
		{l.NewSignal(func(os.Signal) {}).Start(syscall.SIGKILL), "loop: signal start: cannot watch killed", unix.EINVAL},
		{closed.NewSignal(func(os.Signal) {}).Start(syscall.SIGUSR1), "loop: signal start: closed", os.ErrClosed},

		{workNil, "loop: queue work: nil callback", loop.ErrNilCallback},
		{workCtxNil, "loop: queue work context: nil callback", loop.ErrNilCallback},
		{workClosed, "loop: queue work: closed", os.ErrClosed},
		{workCtxClosed, "loop: queue work context: closed", os.ErrClosed},
		{busyWork.Cancel(), "loop: cancel work: already finished", loop.ErrBusy},
		{loop.ErrBusy, "loop: cancel work: already started", unix.EBUSY},
		{loop.ErrCanceled, "loop: work canceled", context.Canceled},
		{loop.ErrWorkExited, "loop: work: exited its goroutine (runtime.Goexit) without returning", loop.ErrWorkExited},
	} {
		require.Error(t, c.err, "want %q", c.text)
		require.EqualError(t, c.err, c.text)
		require.True(t, errors.Is(c.err, c.is), "%q is not %v", c.text, c.is)
		require.Equal(t, 1, strings.Count(c.err.Error(), "loop:"), "%q names the package more than once", c.text)
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// The silent no-ops of old are documented behaviour: AfterFunc with a
// negative duration fires on the next pass (as time.AfterFunc), with a nil
// fn it fires and calls nothing, SetRepeat with a negative interval is no
// repeat; Watch and Modify with no or unknown event bits are EINVAL, and
// descriptors outside 0..MaxInt32 EBADF.
func TestNoSilentNoOps(t *testing.T) {
	efd := eventFD(t)
	l := newLoop(t)

	fired := false
	neg := l.AfterFunc(-time.Hour, func() { fired = true })
	require.True(t, neg.IsActive())
	noWait(t, l)
	require.True(t, fired, "AfterFunc(-1h) fires on the next pass")

	nilFn := l.AfterFunc(20*time.Millisecond, nil)
	require.True(t, nilFn.IsActive(), "AfterFunc(d, nil) is started")
	// Timers count from the loop's cached time, which may be older than
	// time.Now() here by however long this goroutine was descheduled.
	began := l.Now()
	run(t, l)
	require.GreaterOrEqual(t, time.Since(began), 20*time.Millisecond, "it kept the loop alive until it fired")
	require.False(t, nilFn.IsActive())

	rep := 0
	tm := l.NewTimer(func() { rep++ })
	require.NoError(t, tm.Start(0, time.Millisecond))
	tm.SetRepeat(-time.Second)
	require.Zero(t, tm.Repeat())
	run(t, l)
	require.Equal(t, 1, rep, "a negative repeat is no repeat")

	for _, ev := range []poller.Events{0, poller.EdgeTriggered | poller.OneShot, 1 << 20, poller.Readable | 1<<27} {
		_, err := l.Watch(efd, ev, func(poller.Events) {})
		require.ErrorIs(t, err, unix.EINVAL, "Watch(%v)", ev)
	}
	w, err := l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	require.ErrorIs(t, w.Modify(0), unix.EINVAL)
	require.ErrorIs(t, w.Modify(1<<20), unix.EINVAL)
	require.Equal(t, poller.Readable, w.Events(), "a refused Modify changes nothing")
	w.Close(nil)

	for _, fd := range []int{-1, math.MinInt32, 1<<32 + efd, -(1 << 32) + efd, math.MaxInt32 + 1} {
		_, err := l.Watch(fd, poller.Readable, func(poller.Events) {})
		require.ErrorIs(t, err, unix.EBADF, "Watch(%d)", fd)
	}
	// The descriptor the low 32 bits name is still free to watch.
	w, err = l.Watch(efd, poller.Readable, func(poller.Events) {})
	require.NoError(t, err)
	w.Close(nil)
	run(t, l)
}
