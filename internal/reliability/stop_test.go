package reliability

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// stopPhase arms, on a fresh loop, a callback of one phase that calls
// blocker when it runs. The blocker holds the loop inside that phase while
// another goroutine calls Stop.
type stopPhase struct {
	name string
	arm  func(t *testing.T, l *loop.Loop, blocker func())
	// Polls (Stats().Iterations) after Stop: Stop makes Run return after
	// the iteration in progress, so only a Stop before its poll sees one.
	pollsAfter int
}

var stopPhases = []stopPhase{
	{name: "timers before the first iteration", arm: func(t *testing.T, l *loop.Loop, b func()) {
		l.AfterFunc(0, b)
	}},
	{name: "idle", pollsAfter: 1, arm: func(t *testing.T, l *loop.Loop, b func()) {
		var h *loop.Hook
		h = l.NewIdle(func() { h.Stop(); b() })
		require.NoError(t, h.Start())
	}},
	{name: "prepare", pollsAfter: 1, arm: func(t *testing.T, l *loop.Loop, b func()) {
		var h *loop.Hook
		h = l.NewPrepare(func() { h.Stop(); b() })
		require.NoError(t, h.Start())
	}},
	{name: "poll: io watcher", arm: func(t *testing.T, l *loop.Loop, b func()) {
		p := socketPair(t)
		_, err := unix.Write(p[1], []byte{1})
		require.NoError(t, err)
		var w *loop.Watcher
		w, err = l.Watch(p[0], poller.Readable, func(poller.Events) {
			var buf [1]byte
			_, _ = unix.Read(p[0], buf[:])
			w.Stop()
			b()
		})
		require.NoError(t, err)
	}},
	{name: "poll: posted task", arm: func(t *testing.T, l *loop.Loop, b func()) {
		require.NoError(t, l.Post(b))
	}},
	{name: "poll: async", arm: func(t *testing.T, l *loop.Loop, b func()) {
		var a *loop.Async
		a, err := l.NewAsync(func() { a.Close(nil); b() })
		require.NoError(t, err)
		require.NoError(t, a.Send())
	}},
	{name: "poll: work done", arm: func(t *testing.T, l *loop.Loop, b func()) {
		_, err := l.QueueWork(func() {}, func(error) { b() })
		require.NoError(t, err)
	}},
	{name: "check", arm: func(t *testing.T, l *loop.Loop, b func()) {
		var h *loop.Hook
		h = l.NewCheck(func() { h.Stop(); b() })
		require.NoError(t, h.Start())
	}},
	{name: "close callbacks", arm: func(t *testing.T, l *loop.Loop, b func()) {
		l.NewIdle(func() {}).Close(b)
	}},
	{name: "timers after the poll", arm: func(t *testing.T, l *loop.Loop, b func()) {
		// Started from the first pass, so the run-start timer pass is
		// over and the timer fires in an iteration's own timer pass.
		var h *loop.Hook
		h = l.NewPrepare(func() { h.Stop(); l.AfterFunc(time.Millisecond, b) })
		require.NoError(t, h.Start())
	}},
	// "blocked in poll" arms nothing: the loop sleeps in epoll_wait.
	{name: "blocked in poll"},
}

// Stop from another goroutine while the loop is in each phase of an
// iteration, or asleep in poll: Run returns nil after finishing the
// iteration in progress (no new poll after a Stop made at or after the
// poll, one after a Stop before it), nothing is lost (tasks posted before, during and after the Stop all run, exactly
// once, in order), and the loop runs again: its timer keeps ticking and a
// second Run carries on until the handles are closed.
func TestStopFromAnotherGoroutineInEveryPhase(t *testing.T) {
	for _, ph := range stopPhases {
		t.Run(ph.name, func(t *testing.T) {
			checkLeaks(t)
			quiet := ph.arm == nil // nothing may wake the poll on its own
			l := newLoop(t)

			keep, err := l.NewAsync(func() {})
			require.NoError(t, err)
			prepares := 0
			prep := l.NewPrepare(func() { prepares++ })
			require.NoError(t, prep.Start())
			ticks, ticksFirst := 0, -1
			var finish atomic.Bool
			var tick *loop.Timer
			closeAll := func() {
				keep.Close(nil)
				tick.Close(nil)
				prep.Close(nil)
			}
			tick = l.NewTimer(func() {
				ticks++
				// Close down from a tick of the second run, which proves
				// the timer survived the Stop.
				if finish.Load() && ticksFirst >= 0 && ticks > ticksFirst {
					closeAll()
				}
			})
			if !quiet {
				require.NoError(t, tick.Start(time.Millisecond, time.Millisecond))
			}

			entered := make(chan struct{})
			resume := make(chan struct{})
			blocked := false
			blocker := func() {
				if blocked {
					return
				}
				blocked = true
				entered <- struct{}{}
				<-resume
			}
			if !quiet {
				ph.arm(t, l, blocker)
			}

			// A poster posts throughout: before, during and after the Stop.
			const posts = 300
			var ran []int
			postNow := make(chan struct{})
			var postErr error
			var posted sync.WaitGroup
			posted.Add(1)
			go func() {
				defer posted.Done()
				<-postNow
				for i := range posts {
					if err := l.Post(func() { ran = append(ran, i) }); err != nil {
						postErr = err
						return
					}
					if i%16 == 0 {
						time.Sleep(50 * time.Microsecond)
					}
				}
			}()
			if !quiet {
				close(postNow)
			}

			tid := make(chan int, 1)
			done := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				tid <- unix.Gettid()
				done <- l.Run(context.Background())
			}()
			loopTid := recv(t, tid, "loop thread id")
			if quiet {
				waitInEpollWait(t, loopTid)
			} else {
				recv(t, entered, "phase "+ph.name)
			}
			itersAtStop := l.Stats().Iterations // Stats: any goroutine
			l.Stop()
			if !quiet {
				close(resume)
			}
			require.NoError(t, recv(t, done, "Run after Stop"))
			require.Equal(t, ph.pollsAfter, int(l.Stats().Iterations-itersAtStop), "polls after Stop")
			if !quiet {
				require.True(t, blocked)
			}
			ticksFirst = ticks
			require.Equal(t, prepares, int(l.Stats().Iterations), "one prepare pass per poll")

			// Run again: everything posted runs, then the handles are
			// closed and Run returns on its own.
			if quiet {
				close(postNow)
			}
			done2 := goRun(l)
			posted.Wait()
			require.NoError(t, postErr)
			if quiet {
				require.NoError(t, l.Post(closeAll))
			} else {
				finish.Store(true)
			}
			require.NoError(t, recv(t, done2, "second Run"))
			require.Len(t, ran, posts, "posted tasks that ran")
			for i, v := range ran {
				if v != i {
					t.Fatalf("task %d ran as number %d: lost, repeated or out of order", v, i)
				}
			}
		})
	}
}

// waitInEpollWait waits until thread tid sleeps in epoll_pwait or
// epoll_pwait2, as /proc reports it.
func waitInEpollWait(t *testing.T, tid int) {
	t.Helper()
	path := fmt.Sprintf("/proc/self/task/%d/syscall", tid)
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		nr, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if n, err := strconv.Atoi(nr); err == nil && (n == unix.SYS_EPOLL_PWAIT || n == unix.SYS_EPOLL_PWAIT2 || n == unix.SYS_EPOLL_WAIT) {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("loop thread %d never slept in epoll_wait", tid)
}
