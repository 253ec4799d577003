package async_test

import (
	"fmt"
	"sync"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/poller"
)

func Example() {
	q, err := async.NewQueue()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()

	// The consumer learns of work by polling the queue's descriptor.
	p, _ := poller.New()
	defer p.Close()
	_ = p.Add(q.Fd(), poller.Readable, 0)

	var wg sync.WaitGroup
	sum := 0 // touched only by tasks, which run on the consumer
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = q.Post(func() { sum += i })
		}()
	}
	wg.Wait()

	events := make([]poller.Event, 1)
	n, _ := p.Wait(events, -1)
	fmt.Println("ready:", n, "ran:", q.Drain(), "sum:", sum)
	// Output:
	// ready: 1 ran: 3 sum: 6
}
