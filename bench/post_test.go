package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// chanBuffer is the capacity of the channel the peer posts into: large
// enough that a burst rarely blocks a producer, as a task channel in a real
// service would be sized.
const chanBuffer = 1024

// BenchmarkPost measures posting b.N tasks from 1 or 4 producer goroutines to
// one consumer until the consumer has run them all. Every side posts the same
// func value, made before the timer starts, so allocs/op is what posting
// costs beyond the caller's closure. Our sides also report how many eventfd
// writes the burst needed per 1000 posts (wakeups/1kposts): with coalescing,
// far fewer than one per post.
func BenchmarkPost(b *testing.B) {
	for _, producers := range []int{1, 4} {
		b.Run(fmt.Sprintf("impl=chan/producers=%d", producers), func(b *testing.B) { benchChanPost(b, producers) })
		b.Run(fmt.Sprintf("impl=queue/producers=%d", producers), func(b *testing.B) { benchQueuePost(b, producers) })
		b.Run(fmt.Sprintf("impl=loop/producers=%d", producers), func(b *testing.B) { benchLoopPost(b, producers) })
	}
}

// countingTask returns the task every side posts: it counts on the
// consumer goroutine and closes done when the n-th task ran.
func countingTask(n int) (task func(), count *int, done chan struct{}) {
	count = new(int)
	done = make(chan struct{})
	task = func() {
		*count++
		if *count == n {
			close(done)
		}
	}
	return task, count, done
}

// produce runs post share times on each of len(shares) goroutines and
// returns a channel closed when one of them failed, plus a wait function
// returning the first error.
func produce(shares []int, post func() error) (failed chan struct{}, wait func() error) {
	failed = make(chan struct{})
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, share := range shares {
		wg.Go(func() {
			for range share {
				if err := post(); err != nil {
					once.Do(func() { first = err; close(failed) })
					return
				}
			}
		})
	}
	return failed, func() error { wg.Wait(); return first }
}

func benchChanPost(b *testing.B, producers int) {
	n := b.N
	task, count, done := countingTask(n)
	ch := make(chan func(), chanBuffer)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for fn := range ch {
			fn()
		}
	}()

	b.ResetTimer()
	_, wait := produce(splitN(n, producers), func() error { ch <- task; return nil })
	<-done
	b.StopTimer()

	if err := wait(); err != nil {
		b.Fatal(err)
	}
	close(ch)
	<-consumerDone
	if *count != n {
		b.Fatalf("consumer ran %d tasks, want %d", *count, n)
	}
}

func benchQueuePost(b *testing.B, producers int) {
	n := b.N
	task, count, done := countingTask(n)
	q, err := async.NewQueue()
	if err != nil {
		b.Fatal(err)
	}
	p, err := poller.New()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	if err := p.Add(q.Fd(), poller.Readable, 0); err != nil {
		b.Fatal(err)
	}
	// The consumer is what the loop's poll phase reduces to for a queue:
	// wait for the eventfd, drain.
	consumerErr := make(chan error, 1)
	go func() {
		events := make([]poller.Event, 1)
		ran := 0
		for ran < n {
			if _, err := p.Wait(events, -1); err != nil {
				consumerErr <- err
				return
			}
			ran += q.Drain()
		}
		consumerErr <- nil
	}()

	b.ResetTimer()
	failed, wait := produce(splitN(n, producers), func() error { return q.Post(task) })
	select {
	case <-done:
	case <-failed:
	}
	b.StopTimer()

	if err := wait(); err != nil {
		b.Fatal(err)
	}
	if err := <-consumerErr; err != nil {
		b.Fatal(err)
	}
	wakeups := q.Wakeups()
	if err := q.Close(); err != nil {
		b.Fatal(err)
	}
	if *count != n || q.Ran() != uint64(n) {
		b.Fatalf("consumer ran %d tasks (queue says %d), want %d", *count, q.Ran(), n)
	}
	b.ReportMetric(float64(wakeups)*1000/float64(n), "wakeups/1kposts")
}

func benchLoopPost(b *testing.B, producers int) {
	n := b.N
	task, count, done := countingTask(n)
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	// A referenced Async keeps Run in its poll while no task is queued, as
	// a service that takes posts at any time would.
	keep, err := l.NewAsync(func() {})
	if err != nil {
		b.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(context.Background()) }()
	before := l.Stats()

	b.ResetTimer()
	failed, wait := produce(splitN(n, producers), func() error { return l.Post(task) })
	select {
	case <-done:
	case <-failed:
	}
	b.StopTimer()

	if err := wait(); err != nil {
		b.Fatal(err)
	}
	after := l.Stats()
	if err := l.Post(func() { keep.Close(nil) }); err != nil {
		b.Fatal(err)
	}
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	// Counted once Run has returned: the queue adds a drain's tasks to
	// TasksRun when the drain returns, which may be after the last task
	// closed done. The task that closed keep is one more.
	ran := l.Stats().TasksRun - before.TasksRun - 1
	if *count != n || ran != uint64(n) {
		b.Fatalf("loop ran %d tasks (Stats says %d), want %d", *count, ran, n)
	}
	b.ReportMetric(float64(after.WakeupWrites-before.WakeupWrites)*1000/float64(n), "wakeups/1kposts")
}
