package loop_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// A loop with a repeating timer, tasks posted from other goroutines and a
// piece of blocking work. Run returns when nothing is left to do.
func Example() {
	l, err := loop.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	ticks := 0
	var tick *loop.Timer
	tick = l.NewTimer(func() {
		ticks++
		if ticks == 3 {
			tick.Stop()
		}
	})
	_ = tick.Start(time.Millisecond, time.Millisecond)

	// Posted tasks run on the loop goroutine: no lock around sum.
	sum := 0
	var wg sync.WaitGroup
	for i := 1; i <= 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = l.Post(func() { sum += i })
		}()
	}
	wg.Wait()

	_, _ = l.QueueWork(func() {
		time.Sleep(time.Millisecond) // blocking, on a worker
	}, func(err error) {
		fmt.Println("work done:", err)
	})

	if err := l.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	fmt.Println("ticks:", ticks, "sum:", sum)
	// Output:
	// work done: <nil>
	// ticks: 3 sum: 55
}

// Stop from another goroutine ends a loop that would otherwise run for ever.
func ExampleLoop_Stop() {
	l, _ := loop.New()
	defer l.Close()
	keepAlive, _ := l.NewAsync(func() {})
	defer keepAlive.Close(nil)

	go func() {
		_ = l.Post(func() { fmt.Println("task ran") })
		_ = l.Post(l.Stop)
	}()
	fmt.Println("run:", l.Run(context.Background()))
	// Output:
	// task ran
	// run: <nil>
}

// Watch a descriptor: the callback runs on the loop each time it is ready.
// Here one end of a socket pair is written, the loop reads the other end,
// and the watcher closes itself once it has the message.
func ExampleLoop_Watch() {
	l, _ := loop.New()
	defer l.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	var w *loop.Watcher
	w, err = l.Watch(fds[0], poller.Readable, func(ev poller.Events) {
		buf := make([]byte, 64)
		n, _ := unix.Read(fds[0], buf)
		fmt.Printf("%v: %q\n", ev, buf[:n])
		w.Close(nil) // before the descriptor is closed, as always
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = unix.Write(fds[1], []byte("ping"))
	fmt.Println("run:", l.Run(context.Background()))
	// Output:
	// Readable: "ping"
	// run: <nil>
}

// A service ends its Run by its context, then shuts down: handles are
// closed, queued work is canceled, and running work is told to stop through
// its context and waited for.
func ExampleLoop_Shutdown() {
	l, _ := loop.New()
	tick := l.NewTimer(func() {})
	_ = tick.Start(time.Hour, time.Hour) // would keep Run going for ever
	tick.SetCloseHook(func() { fmt.Println("timer closed") })

	started := make(chan struct{})
	_, _ = l.QueueWorkContext(func(ctx context.Context) {
		close(started)
		<-ctx.Done() // a long job that stops when told
	}, func(err error) { fmt.Println("work done:", err) })
	<-started

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println("run:", l.Run(ctx))
	fmt.Println("shutdown:", l.Shutdown(context.Background()))
	fmt.Println("alive:", l.Alive())
	// Output:
	// run: context deadline exceeded
	// timer closed
	// work done: <nil>
	// shutdown: <nil>
	// alive: false
}

// Under WithQueueLimit, Post refuses work past the limit with EAGAIN, and
// PostContext waits for the loop to make room.
func ExampleLoop_PostContext() {
	l, _ := loop.New(loop.WithQueueLimit(2))
	defer l.Close()

	_ = l.Post(func() { fmt.Println("task 1") })
	_ = l.Post(func() { fmt.Println("task 2") })
	err := l.Post(func() { fmt.Println("never") })
	fmt.Println("third post refused:", errors.Is(err, unix.EAGAIN))

	posted := make(chan error)
	go func() { posted <- l.PostContext(context.Background(), func() { fmt.Println("task 3") }) }()
	_, _ = l.RunNoWait() // runs tasks 1 and 2: room for the waiting post
	fmt.Println("PostContext:", <-posted)
	_, _ = l.RunNoWait()
	// Output:
	// third post refused: true
	// task 1
	// task 2
	// PostContext: <nil>
	// task 3
}

// Walk visits every handle not yet closed, started or stopped: here to
// close them all.
func ExampleLoop_Walk() {
	l, _ := loop.New()
	defer l.Close()
	_ = l.NewTimer(func() {})             // never started
	_ = l.AfterFunc(time.Hour, func() {}) // pending
	idle := l.NewIdle(func() {})
	_ = idle.Start()

	n := 0
	l.Walk(func(h loop.Handle) {
		n++
		h.Close(nil)
	})
	fmt.Println("closed:", n, "run:", l.Run(context.Background()))
	// Output:
	// closed: 3 run: <nil>
}
