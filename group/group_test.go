package group_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// runGuard bounds how long a test waits for Run; not a timing assertion.
const runGuard = 10 * time.Second

func newGroup(t *testing.T, n int, opts ...loop.Option) *group.Group {
	t.Helper()
	before := leakcheck.Take()
	g, err := group.New(n, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := g.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
		before.Check(t)
	})
	return g
}

// keepAlive gives every loop a referenced Async, so that Run goes on
// until stopped; the returned function closes them (on their loops).
func keepAlive(t *testing.T, g *group.Group) (release func()) {
	t.Helper()
	asyncs := make([]*loop.Async, g.Len())
	for i := range asyncs {
		a, err := g.Loop(i).NewAsync(func() {})
		require.NoError(t, err)
		asyncs[i] = a
	}
	return func() {
		for i, a := range asyncs {
			require.NoError(t, g.Post(i, func() { a.Close(nil) }))
		}
	}
}

func runAsync(g *group.Group, ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(runGuard):
		t.Fatalf("Run did not return within %v", runGuard)
		return nil
	}
}

func TestNewAndLen(t *testing.T) {
	g := newGroup(t, 0)
	assert.Equal(t, runtime.GOMAXPROCS(0), g.Len())
	g3 := newGroup(t, 3)
	require.Equal(t, 3, g3.Len())
	seen := map[*loop.Loop]bool{}
	for i := range 3 {
		require.NotNil(t, g3.Loop(i))
		seen[g3.Loop(i)] = true
	}
	assert.Len(t, seen, 3, "distinct loops")
	assert.Nil(t, g3.Loop(-1))
	assert.Nil(t, g3.Loop(3))

	_, err := group.New(2, loop.WithWorkers(0))
	require.ErrorIs(t, err, unix.EINVAL, "a bad option, and the loops made are closed (leak check)")
}

// TestPostRunsOnItsLoop: Post(i, fn) runs fn on loop i, whose goroutine is
// locked to an OS thread of its own: every post to one loop sees one
// thread id, and different loops different ones.
func TestPostRunsOnItsLoop(t *testing.T) {
	const n, posts = 3, 20
	g := newGroup(t, n)
	release := keepAlive(t, g)
	done := runAsync(g, context.Background())
	var mu sync.Mutex
	tids := make([]map[int]bool, n)
	for i := range tids {
		tids[i] = map[int]bool{}
	}
	var wg sync.WaitGroup
	for i := range n {
		for range posts {
			wg.Add(1)
			require.NoError(t, g.Post(i, func() {
				defer wg.Done()
				runtime.Gosched() // a locked goroutine stays on its thread
				mu.Lock()
				tids[i][unix.Gettid()] = true
				mu.Unlock()
			}))
		}
	}
	wg.Wait()
	release()
	require.NoError(t, wait(t, done), "Run returns once every loop has run out of work")
	all := map[int]bool{}
	for i, m := range tids {
		require.Len(t, m, 1, "loop %d ran on one thread", i)
		for tid := range m {
			all[tid] = true
		}
	}
	assert.Len(t, all, n, "one thread per loop")
}

// TestRunReturnsWhenAllReturned: loops that run out of work at different
// times: Run returns after the last.
func TestRunReturnsWhenAllReturned(t *testing.T) {
	g := newGroup(t, 3)
	fired := make([]bool, 3)
	for i := range 3 {
		g.Loop(i).AfterFunc(time.Duration(i*20)*time.Millisecond, func() { fired[i] = true })
	}
	require.NoError(t, wait(t, runAsync(g, context.Background())))
	assert.Equal(t, []bool{true, true, true}, fired)
}

// TestFirstErrorStopsTheOthers: a panic on one loop (no panic handler)
// ends its Run with a *loop.PanicError; the others, which would run
// forever, are stopped, and Run returns that error. The group runs again.
func TestFirstErrorStopsTheOthers(t *testing.T) {
	g := newGroup(t, 3)
	release := keepAlive(t, g)
	g.Loop(1).AfterFunc(10*time.Millisecond, func() { panic("boom") })
	err := wait(t, runAsync(g, context.Background()))
	var pe *loop.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "boom", pe.Value)

	// Run again: the loops still have their Asyncs; Stop ends it.
	done := runAsync(g, context.Background())
	ran := make(chan struct{})
	require.NoError(t, g.Post(2, func() { close(ran) }))
	<-ran
	g.Stop()
	require.NoError(t, wait(t, done))
	release()
	require.NoError(t, wait(t, runAsync(g, context.Background())))
}

// TestRunContext: the context ending ends every loop, and Run returns its
// error; a second Run during the first is EBUSY.
func TestRunContext(t *testing.T) {
	g := newGroup(t, 2)
	release := keepAlive(t, g)
	ctx, cancel := context.WithCancel(context.Background())
	done := runAsync(g, ctx)
	started := make(chan struct{})
	require.NoError(t, g.Post(0, func() { close(started) }))
	<-started
	err := g.Run(context.Background())
	require.ErrorIs(t, err, unix.EBUSY)
	assert.Equal(t, "group: run: already running: device or resource busy", err.Error())
	require.ErrorIs(t, g.Close(), unix.EBUSY)
	cancel()
	require.ErrorIs(t, wait(t, done), context.Canceled)
	release()
	require.NoError(t, wait(t, runAsync(g, context.Background())))
}

func TestBadInputAndClose(t *testing.T) {
	g := newGroup(t, 2)
	err := g.Post(2, func() {})
	require.ErrorIs(t, err, unix.EINVAL)
	assert.Equal(t, "group: post: loop 2 of 2: invalid argument", err.Error())
	require.ErrorIs(t, g.Post(-1, func() {}), unix.EINVAL)
	require.ErrorIs(t, g.Post(0, nil), unix.EINVAL)

	require.NoError(t, g.Close())
	require.ErrorIs(t, g.Close(), os.ErrClosed)
	require.ErrorIs(t, g.Run(context.Background()), os.ErrClosed)
	require.ErrorIs(t, g.Post(0, func() {}), os.ErrClosed)
	g.Stop() // harmless after Close
}
