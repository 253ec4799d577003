package ringbuf

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// TestRingReaderNoLostWakeup: a producer on one CPU and a reader blocked in
// Poll on another, the reader catching up (and so going back to sleep) over
// and over. The kernel wakes the reader only when it sees that the reader
// had caught up (see storeRelease); a consumer position published too late
// would leave a record in the ring while Poll sleeps on. Poll's timeout is
// far longer than the whole run, so a Poll that times out with records
// pending is a lost wakeup.
func TestRingReaderNoLostWakeup(t *testing.T) {
	cpus := testCPUs(t)
	if len(cpus) < 2 {
		t.Skip("needs two online CPUs")
	}
	m := newRingMap(t, 1<<16)
	r := newRingReader(t, m)
	pp, err := bpftest.NewRingProducer(m, 16)
	p := newProducer(t, pp, err)

	const records = 5000
	var emitted atomic.Int64
	done := make(chan error, 1)
	go func() {
		pinCPU(t, cpus[1])
		buf := make([]byte, 16)
		for i := range records {
			if err := p.Emit(record(buf, 0, i)); err != nil {
				done <- err
				return
			}
			emitted.Add(1)
			if i%7 == 0 {
				// Let the reader catch up and fall asleep now and then.
				time.Sleep(10 * time.Microsecond)
			}
		}
		done <- nil
	}()

	const timeout = 10 * time.Second
	got, next := 0, uint32(0)
	for got < records {
		start := time.Now()
		n, err := r.Poll(timeout, func(data []byte) {
			if seq := getU32(data[4:]); seq != next {
				t.Errorf("record %d after %d", seq, next-1)
			}
			next++
		})
		if err != nil {
			t.Fatal(err)
		}
		// Poll also returns 0 at once while the next record is reserved
		// but not committed yet; only a Poll that slept out its timeout
		// missed a wakeup.
		if n == 0 && time.Since(start) >= timeout {
			t.Fatalf("Poll slept through a wakeup: %d records read of %d emitted, %d bytes pending", got, emitted.Load(), r.Available())
		}
		got += n
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.Stats().Dropped != 0 {
		t.Fatalf("%d records dropped by a full ring; the test needs all", p.Stats().Dropped)
	}
}
