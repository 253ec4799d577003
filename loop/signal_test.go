package loop_test

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// The Signal tests follow libuv's test-signal.c and
// test-signal-multiple-loops.c: signals sent to the process with kill(2).

func raise(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, unix.Kill(unix.Getpid(), sig))
}

// TestSignalDelivered (we_get_signal): a signal sent to the process runs
// the callback on the loop, with that signal; the callback stops the
// handle and Run returns.
func TestSignalDelivered(t *testing.T) {
	l := newLoop(t)
	var got []os.Signal
	var s *loop.Signal
	s = l.NewSignal(func(sig os.Signal) {
		got = append(got, sig)
		if len(got) < 3 {
			raise(t, unix.SIGUSR1) // again, from the callback
			return
		}
		s.Close(nil)
	})
	require.NoError(t, s.Start(unix.SIGUSR1))
	assert.True(t, s.IsActive())
	raise(t, unix.SIGUSR1)
	run(t, l)
	assert.Equal(t, []os.Signal{unix.SIGUSR1, unix.SIGUSR1, unix.SIGUSR1}, got)
}

// TestSignalMultipleHandles (we_get_signals): several handles on one
// signal each get it, a handle on two signals gets both, and no handle
// gets a signal it does not watch.
func TestSignalMultipleHandles(t *testing.T) {
	l := newLoop(t)
	type key struct {
		h   int
		sig os.Signal
	}
	got := map[key]int{}
	sets := [][]os.Signal{
		{unix.SIGUSR1}, {unix.SIGUSR1}, {unix.SIGUSR2}, {unix.SIGUSR1, unix.SIGUSR2},
	}
	handles := make([]*loop.Signal, len(sets))
	done := func() bool {
		return got[key{0, unix.SIGUSR1}] > 0 && got[key{1, unix.SIGUSR1}] > 0 && got[key{2, unix.SIGUSR2}] > 0 &&
			got[key{3, unix.SIGUSR1}] > 0 && got[key{3, unix.SIGUSR2}] > 0
	}
	for i, set := range sets {
		handles[i] = l.NewSignal(func(sig os.Signal) {
			got[key{i, sig}]++
			if done() {
				for _, h := range handles {
					h.Close(nil)
				}
			}
		})
		require.NoError(t, handles[i].Start(set...))
	}
	raise(t, unix.SIGUSR1)
	raise(t, unix.SIGUSR2)
	run(t, l)
	assert.True(t, done(), "%v", got)
	assert.Zero(t, got[key{0, unix.SIGUSR2}])
	assert.Zero(t, got[key{1, unix.SIGUSR2}])
	assert.Zero(t, got[key{2, unix.SIGUSR1}])
}

// TestSignalStopRestart: a stopped handle gets nothing (a handle that
// stays started witnesses the arrival), and started again it gets the
// next one.
func TestSignalStopRestart(t *testing.T) {
	l := newLoop(t)
	stoppedCalls, witnessCalls := 0, 0
	s := l.NewSignal(func(os.Signal) { stoppedCalls++ })
	var witness *loop.Signal
	witness = l.NewSignal(func(os.Signal) {
		witnessCalls++
		l.Stop()
	})
	require.NoError(t, witness.Start(unix.SIGUSR2))
	require.NoError(t, s.Start(unix.SIGUSR2))
	s.Stop()
	assert.False(t, s.IsActive())
	raise(t, unix.SIGUSR2)
	run(t, l)
	assert.Equal(t, 1, witnessCalls)
	assert.Zero(t, stoppedCalls, "stopped")

	require.NoError(t, s.Start(unix.SIGUSR2))
	raise(t, unix.SIGUSR2)
	run(t, l)
	assert.Equal(t, 1, stoppedCalls, "restarted")
	s.Close(nil)
	witness.Close(nil)
	run(t, l)
}

// TestSignalRestartWithOtherSet: Start on a started handle replaces its
// set.
func TestSignalRestartWithOtherSet(t *testing.T) {
	l := newLoop(t)
	var got []os.Signal
	s := l.NewSignal(func(sig os.Signal) { got = append(got, sig); l.Stop() })
	require.NoError(t, s.Start(unix.SIGUSR1))
	require.NoError(t, s.Start(unix.SIGUSR2))
	raise(t, unix.SIGUSR2)
	run(t, l)
	assert.Equal(t, []os.Signal{unix.SIGUSR2}, got)
	s.Close(nil)
	run(t, l)
}

// TestSignalUnref: an unreferenced Signal does not keep Run going, and
// still runs while something else does.
func TestSignalUnref(t *testing.T) {
	l := newLoop(t)
	calls := 0
	s := l.NewSignal(func(os.Signal) { calls++ })
	require.NoError(t, s.Start(unix.SIGUSR1))
	s.Unref()
	assert.False(t, s.HasRef())
	run(t, l) // returns at once

	keep := l.NewTimer(func() {})
	require.NoError(t, keep.Start(time.Hour, 0))
	var stopper *loop.Hook
	stopper = l.NewCheck(func() {
		if calls > 0 {
			keep.Close(nil)
			stopper.Close(nil)
		}
	})
	require.NoError(t, stopper.Start())
	raise(t, unix.SIGUSR1)
	run(t, l)
	assert.Positive(t, calls)
	s.Close(nil)
	run(t, l)
}

// TestSignalPendingOnClose (signal_pending_on_close): a signal that
// arrived before the handle closed is not delivered after Close; the
// close callback runs once, later.
func TestSignalPendingOnClose(t *testing.T) {
	l := newLoop(t)
	calls, closed := 0, 0
	s := l.NewSignal(func(os.Signal) { calls++ })
	require.NoError(t, s.Start(unix.SIGUSR1))
	raise(t, unix.SIGUSR1)
	time.Sleep(10 * time.Millisecond) // let the relay note it, if it will
	s.Close(func() { closed++ })
	assert.Zero(t, closed)
	run(t, l)
	assert.Zero(t, calls)
	assert.Equal(t, 1, closed)
}

// TestSignalClosedByLoop: the loop's Close closes started Signals and
// ends their relay (newLoop's leak check sees the goroutine gone).
func TestSignalClosedByLoop(t *testing.T) {
	l := newLoop(t)
	s := l.NewSignal(func(os.Signal) {})
	require.NoError(t, s.Start(unix.SIGUSR1))
	s2 := l.NewSignal(func(os.Signal) {})
	require.NoError(t, s2.Start(unix.SIGUSR2))
	require.NoError(t, l.Close())
	assert.True(t, s.IsClosing())
	assert.True(t, s2.IsClosing())
	assert.False(t, s.IsActive())
	require.ErrorIs(t, s.Start(unix.SIGUSR1), os.ErrClosed)
	err := l.NewSignal(func(os.Signal) {}).Start(unix.SIGUSR1)
	require.ErrorIs(t, err, os.ErrClosed, "a new Signal of a closed loop")
	assert.Equal(t, "loop: signal start: closed", err.Error())
}

// TestSignalMultipleLoops (signal_multiple_loops): one signal reaches the
// handles of every loop that watches it, each loop on its own goroutine.
func TestSignalMultipleLoops(t *testing.T) {
	const loops = 3
	ls := make([]*loop.Loop, loops)
	ready := make(chan struct{}, loops)
	for i := range ls {
		ls[i] = newLoop(t)
	}
	var wg sync.WaitGroup
	got := make([]int, loops)
	for i, l := range ls {
		s := l.NewSignal(nil)
		s = l.NewSignal(func(os.Signal) {
			got[i]++
			s.Close(nil)
		})
		require.NoError(t, s.Start(unix.SIGUSR1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), runGuard)
			defer cancel()
			ready <- struct{}{}
			assert.NoError(t, l.Run(ctx))
		}()
	}
	for range loops {
		<-ready
	}
	raise(t, unix.SIGUSR1)
	wg.Wait()
	for i := range ls {
		assert.Equal(t, 1, got[i], "loop %d", i)
	}
}

type fakeSignal struct{}

func (fakeSignal) String() string { return "fake" }
func (fakeSignal) Signal()        {}

func TestSignalBadInput(t *testing.T) {
	l := newLoop(t)
	s := l.NewSignal(func(os.Signal) {})
	for _, c := range []struct {
		name string
		sigs []os.Signal
	}{
		{"none", nil},
		{"SIGKILL", []os.Signal{unix.SIGKILL}},
		{"SIGSTOP", []os.Signal{unix.SIGUSR1, unix.SIGSTOP}},
		{"zero", []os.Signal{syscall.Signal(0)}},
		{"too big", []os.Signal{syscall.Signal(65)}},
		{"not a syscall.Signal", []os.Signal{fakeSignal{}}},
	} {
		err := s.Start(c.sigs...)
		require.ErrorIs(t, err, unix.EINVAL, c.name)
		assert.False(t, s.IsActive(), c.name)
	}
	err := l.NewSignal(nil).Start(unix.SIGUSR1)
	require.ErrorIs(t, err, loop.ErrNilCallback)
	assert.Equal(t, "loop: signal start: nil callback", err.Error())
	s.Close(nil)
	require.ErrorIs(t, s.Start(unix.SIGUSR1), os.ErrClosed)
	run(t, l)
}

// TestSignalReleasesRegistration runs children, because each ends by
// being killed: once no Signal watches SIGTERM any more, SIGTERM has its
// default action again and kills the process, with no signal.Reset. In
// "swap" the handle is restarted with another set (a fresh os/signal
// channel replaces the old one); in "close" the last handle is closed
// (the relay ends).
func TestSignalReleasesRegistration(t *testing.T) {
	if mode := os.Getenv("EVENTPIPE_SIGNAL_CHILD"); mode != "" {
		signalChild(t, mode)
		return
	}
	for _, mode := range []string{"swap", "close"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSignalReleasesRegistration$", "-test.count=1")
			cmd.Env = append(os.Environ(), "EVENTPIPE_SIGNAL_CHILD="+mode)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the child must die by SIGTERM; output:\n%s", out)
			ws := exit.Sys().(syscall.WaitStatus)
			require.True(t, ws.Signaled(), "child exited with %v; output:\n%s", exit, out)
			require.Equal(t, unix.SIGTERM, ws.Signal(), "output:\n%s", out)
			require.Contains(t, string(out), "child: SIGTERM caught, then SIGUSR1")
		})
	}
}

func signalChild(t *testing.T, mode string) {
	l, err := loop.New()
	require.NoError(t, err)
	var got []os.Signal
	s := l.NewSignal(func(sig os.Signal) { got = append(got, sig); l.Stop() })
	require.NoError(t, s.Start(unix.SIGTERM, unix.SIGUSR1))
	raise(t, unix.SIGTERM)
	require.NoError(t, l.Run(context.Background()))
	if mode == "swap" {
		// SIGTERM leaves the set: a fresh channel for SIGUSR1 alone.
		require.NoError(t, s.Start(unix.SIGUSR1))
	}
	raise(t, unix.SIGUSR1)
	require.NoError(t, l.Run(context.Background()))
	require.Equal(t, []os.Signal{unix.SIGTERM, unix.SIGUSR1}, got)
	os.Stdout.WriteString("child: SIGTERM caught, then SIGUSR1\n")
	if mode == "close" {
		s.Close(nil)
		require.NoError(t, l.Run(context.Background()))
	}
	// Nobody watches SIGTERM now: the next one is fatal.
	raise(t, unix.SIGTERM)
	time.Sleep(5 * time.Second)
	t.Fatal("still alive 5s after SIGTERM")
}

// TestSignalPanic: a callback that panics (no panic handler) ends the run
// with a *PanicError; the signal is not lost: the next run delivers it to
// the handles the panic kept from it (the panicking one may see it again,
// at least once).
func TestSignalPanic(t *testing.T) {
	l := newLoop(t)
	first, second := 0, 0
	a := l.NewSignal(func(os.Signal) {
		first++
		if first == 1 {
			panic("first")
		}
	})
	var b *loop.Signal
	b = l.NewSignal(func(os.Signal) {
		second++
		a.Close(nil)
		b.Close(nil)
	})
	require.NoError(t, a.Start(unix.SIGUSR2))
	require.NoError(t, b.Start(unix.SIGUSR2))
	raise(t, unix.SIGUSR2)
	var pe *loop.PanicError
	require.ErrorAs(t, runErr(t, l), &pe)
	assert.Equal(t, "first", pe.Value)
	assert.Zero(t, second)
	run(t, l)
	assert.Equal(t, 1, second)
	assert.Equal(t, 2, first)
}
