package loop_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/eventpipe/eventpipe/loop"
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
