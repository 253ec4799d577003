// Command tour is eventpipe's demo: one loop that runs a repeating timer,
// serves a TCP socket (package stream), takes tasks posted from many
// goroutines, wakes on an async handle and offloads blocking work to its
// worker pool, then prints what happened and checks that nothing was lost. Where it may (root with
// CAP_BPF and CAP_PERFMON), it then reads real BPF output through a loop:
// records the kernel writes into a perf event array and a BPF ring buffer.
//
//	go run ./examples/tour
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
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

	// 2. A socket: a TCP listener on the loop (package stream); a client
	//    on another goroutine sends a greeting, the loop echoes it back.
	received := 0
	var ln *stream.Listener
	ln, err = stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(func() { fmt.Printf("%s listener closed\n", at()) })
		c.OnData(func(c *stream.Conn, data []byte) int {
			received += len(data)
			fmt.Printf("%s socket: read %q, echoing it\n", at(), data)
			c.Write(data)
			return len(data)
		})
		c.OnClose(func(_ *stream.Conn, err error) { fmt.Printf("%s socket closed: %v\n", at(), err) })
	})
	if err != nil {
		return err
	}
	echoed := make(chan string, 1)
	go func() {
		time.Sleep(3 * time.Millisecond)
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			echoed <- err.Error()
			return
		}
		defer conn.Close()
		conn.Write([]byte("hello, loop"))
		buf := make([]byte, len("hello, loop"))
		_, err = io.ReadFull(conn, buf)
		if err != nil {
			echoed <- err.Error()
			return
		}
		echoed <- string(buf)
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
	echo := <-echoed
	fmt.Printf("socket bytes:     %d, echoed back: %q\n", received, echo)
	fmt.Printf("tasks posted:     %d, run: %d\n", producers*perProducer, tasksRun)
	fmt.Printf("async sends:      %d, callbacks: %d (coalesced)\n", sends, asyncCalls)
	fmt.Printf("loop iterations:  %d, io events: %d, wakeup writes: %d\n",
		st.Iterations, st.EventsDispatched, st.WakeupWrites)

	if ticks != 4 || received != len("hello, loop") || echo != "hello, loop" || tasksRun != producers*perProducer || asyncCalls == 0 {
		return fmt.Errorf("something was lost")
	}
	fmt.Println("nothing lost.")
	return ringsTour()
}
