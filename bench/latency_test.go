package bench

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// latencyGap is how long the producer busy-waits between samples, so that
// the consumer is back asleep (in epoll_wait, or parked on the channel) when
// the next wakeup comes. It spins rather than sleeps so that no timer or
// scheduler hand-off of the producer's own is in the picture.
const latencyGap = 30 * time.Microsecond

// latencyWarmup samples are taken and thrown away before the timer starts.
const latencyWarmup = 200

// BenchmarkWakeupLatency measures, over b.N samples, the time from the
// producer starting a wakeup to the consumer's callback starting, with the
// consumer idle beforehand:
//
//   - impl=floor: a bare eventfd write to a goroutine blocked in
//     epoll_wait on it; the time is taken as soon as epoll_wait returns;
//   - impl=floor+read: the same, with the time taken after the consumer's
//     read(2) that resets the eventfd, as a level-triggered consumer (such
//     as async.Queue.Drain) must before it runs anything; the loop watches
//     its eventfd edge-triggered and skips that read;
//   - impl=chan: a send on a task channel to a goroutine blocked receiving;
//   - impl=loop: loop.Post to a loop idle in its poll.
//
// After each wakeup the producer blocks on an acknowledgement from the
// consumer, then spins for latencyGap. p50-ns and p99-ns are the figures;
// ns/op is the whole sample period and includes the gap.
func BenchmarkWakeupLatency(b *testing.B) {
	b.Run("impl=floor", func(b *testing.B) { benchFloorLatency(b, false) })
	b.Run("impl=floor+read", func(b *testing.B) { benchFloorLatency(b, true) })
	b.Run("impl=chan", benchChanLatency)
	b.Run("impl=loop", benchLoopLatency)
}

// sampler is the measurement shared by every side: the consumer calls
// arrived at the start of its callback.
type sampler struct {
	base time.Time
	t1   atomic.Int64
	ack  chan struct{}
}

func newSampler() *sampler { return &sampler{base: time.Now(), ack: make(chan struct{}, 1)} }

func (s *sampler) now() int64 { return int64(time.Since(s.base)) }

// arrived runs on the consumer at the start of its callback.
func (s *sampler) arrived() {
	s.t1.Store(s.now())
	s.ack <- struct{}{}
}

// run takes latencyWarmup untimed samples and then b.N timed ones, each by
// calling wake, and reports the percentiles.
func (s *sampler) run(b *testing.B, wake func() error) {
	b.Helper()
	sample := func() int64 {
		spin(latencyGap)
		t0 := s.now()
		if err := wake(); err != nil {
			b.Fatal(err)
		}
		<-s.ack
		return s.t1.Load() - t0
	}
	for range latencyWarmup {
		sample()
	}
	samples := make([]int64, b.N)
	b.ResetTimer()
	for i := range samples {
		samples[i] = sample()
	}
	b.StopTimer()
	for i, d := range samples {
		if d <= 0 {
			b.Fatalf("sample %d: callback started %d ns after the wakeup", i, d)
		}
	}
	reportLatency(b, samples)
}

func benchFloorLatency(b *testing.B, afterRead bool) {
	s := newSampler()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(efd)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(epfd)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		b.Fatal(err)
	}
	var stop atomic.Bool
	consumerErr := make(chan error, 1)
	go func() {
		events := make([]unix.EpollEvent, 1)
		var buf [8]byte
		for {
			if _, err := unix.EpollWait(epfd, events, -1); err != nil {
				if err == unix.EINTR {
					continue
				}
				consumerErr <- err
				return
			}
			t1 := s.now()
			if _, err := unix.Read(efd, buf[:]); err != nil {
				consumerErr <- err
				return
			}
			if afterRead {
				t1 = s.now()
			}
			if stop.Load() {
				consumerErr <- nil
				return
			}
			s.t1.Store(t1)
			s.ack <- struct{}{}
		}
	}()
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	write := func() error {
		_, err := unix.Write(efd, one[:])
		return err
	}

	s.run(b, write)

	stop.Store(true)
	if err := write(); err != nil {
		b.Fatal(err)
	}
	if err := <-consumerErr; err != nil {
		b.Fatal(err)
	}
}

func benchChanLatency(b *testing.B) {
	s := newSampler()
	ch := make(chan func(), chanBuffer)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		for fn := range ch {
			fn()
		}
	}()

	task := s.arrived // a method value allocates: make it once
	s.run(b, func() error { ch <- task; return nil })

	close(ch)
	<-consumerDone
}

func benchLoopLatency(b *testing.B) {
	s := newSampler()
	l, err := loop.New()
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	keep, err := l.NewAsync(func() {})
	if err != nil {
		b.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(context.Background()) }()
	task := s.arrived // one func value for every post
	before := l.Stats()

	s.run(b, func() error { return l.Post(task) })

	after := l.Stats()
	if err := l.Post(func() { keep.Close(nil) }); err != nil {
		b.Fatal(err)
	}
	if err := <-runErr; err != nil {
		b.Fatal(err)
	}
	// Every sample found the loop asleep, so each post had to wake it.
	if posts := uint64(b.N + latencyWarmup); after.TasksRun-before.TasksRun != posts || after.WakeupWrites-before.WakeupWrites != posts {
		b.Fatalf("loop ran %d tasks with %d wakeups for %d posts", after.TasksRun-before.TasksRun, after.WakeupWrites-before.WakeupWrites, posts)
	}
}
