// Command tour is eventpipe's demo: one loop that runs a repeating timer,
// watches a socket, takes tasks posted from many goroutines, wakes on an
// async handle and offloads blocking work to its worker pool, then prints
// what happened and checks that nothing was lost. Where it may (root with
// CAP_BPF and CAP_PERFMON), it then reads real BPF output through a loop:
// records the kernel writes into a perf event array and a BPF ring buffer.
//
//	go run ./examples/tour
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

func main() {
	if err := tour(); err != nil {
		fmt.Fprintln(os.Stderr, "tour:", err)
		os.Exit(1)
	}
}

func tour() error {
	l, err := loop.New(loop.WithWorkers(2))
	if err != nil {
		return err
	}
	defer l.Close()
	start := l.Now()
	at := func() string { return fmt.Sprintf("[%6.1fms]", float64(l.Now().Sub(start))/1e6) }

	// 1. A repeating timer: ticks every 5ms, stops itself after 4 ticks.
	ticks := 0
	var tick *loop.Timer
	tick = l.NewTimer(func() {
		ticks++
		fmt.Printf("%s timer tick %d\n", at(), ticks)
		if ticks == 4 {
			tick.Close(nil)
		}
	})
	if err := tick.Start(5*time.Millisecond, 5*time.Millisecond); err != nil {
		return err
	}

	// 2. A watched socket: the other end is written from another goroutine.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	received := 0
	var sock *loop.Watcher
	sock, err = l.Watch(fds[0], poller.Readable, func(ev poller.Events) {
		buf := make([]byte, 64)
		n, _ := unix.Read(fds[0], buf)
		received += n
		fmt.Printf("%s socket %v: read %q\n", at(), ev, buf[:n])
		sock.Close(func() { fmt.Printf("%s socket watcher closed\n", at()) })
	})
	if err != nil {
		return err
	}
	go func() {
		time.Sleep(3 * time.Millisecond)
		unix.Write(fds[1], []byte("hello, loop"))
	}()

	// 3. Tasks posted from many goroutines. Tasks run on the loop, so the
	//    counter needs no lock; every accepted post is accounted for.
	const producers, perProducer = 8, 1000
	tasksRun := 0
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perProducer {
				if err := l.Post(func() { tasksRun++ }); err != nil {
					fmt.Fprintf(os.Stderr, "producer %d: %v\n", p, err)
					return
				}
			}
		}()
	}

	// 4. An async handle: many sends from other goroutines coalesce into
	//    a few callbacks; the last send is always followed by one.
	sends, asyncCalls := 0, 0
	wake, err := l.NewAsync(func() { asyncCalls++ })
	if err != nil {
		return err
	}
	var sendWG sync.WaitGroup
	for range 4 {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			for range 250 {
				_ = wake.Send()
			}
		}()
	}
	sends = 4 * 250

	// 5. Blocking work on the pool; done runs back on the loop.
	var sum int
	_, err = l.QueueWork(func() {
		for i := 1; i <= 1_000_000; i++ {
			sum += i
		}
	}, func(err error) {
		fmt.Printf("%s work done (err=%v): sum(1..1e6) = %d\n", at(), err, sum)
	})
	if err != nil {
		return err
	}

	// Once every producer and sender is finished, close the async handle
	// from the loop, so the loop can end when the rest is done.
	go func() {
		wg.Wait()
		sendWG.Wait()
		_ = l.Post(func() { wake.Close(nil) })
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Run(ctx); err != nil {
		return err
	}

	st := l.Stats()
	fmt.Printf("\nloop ended at %s\n", at())
	fmt.Printf("timer ticks:      %d\n", ticks)
	fmt.Printf("socket bytes:     %d\n", received)
	fmt.Printf("tasks posted:     %d, run: %d\n", producers*perProducer, tasksRun)
	fmt.Printf("async sends:      %d, callbacks: %d (coalesced)\n", sends, asyncCalls)
	fmt.Printf("loop iterations:  %d, io events: %d, wakeup writes: %d\n",
		st.Iterations, st.EventsDispatched, st.WakeupWrites)

	if ticks != 4 || received != len("hello, loop") || tasksRun != producers*perProducer || asyncCalls == 0 {
		return fmt.Errorf("something was lost")
	}
	fmt.Println("nothing lost.")
	return ringsTour()
}
