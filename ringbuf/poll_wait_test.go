package ringbuf

import (
	"testing"
	"time"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// A record drained by Consume, which reads the positions and never Fd,
// leaves its wakeup pending on Fd with nothing to drain. Poll must take
// that wakeup for what it is and wait again: (0, nil) means the timeout
// passed.

// stalePerfWakeup has the kernel write one record on cpu and drains it by
// Consume, so its wakeup stays pending on r's Fd.
func stalePerfWakeup(t *testing.T, r *PerfReader, p *bpftest.Producer, cpu, seq int) {
	t.Helper()
	emitSeq(t, p, cpu, seq, seq+1)
	if n, err := r.Consume(Handler{}); n != 1 || err != nil {
		t.Fatalf("Consume = %d, %v", n, err)
	}
}

func TestPerfReaderPollWaitsPastStaleWakeup(t *testing.T) {
	m := newPerfArray(t)
	cpu := testCPUs(t)[0]
	r := newPerfReader(t, m, PerfOptions{CPUs: []int{cpu}})
	p, err := bpftest.NewPerfProducer(m, 16)
	p = newProducer(t, p, err)

	// With a timeout: not before it has passed.
	const timeout = 20 * time.Millisecond
	for i := 0; i < 5; i++ {
		stalePerfWakeup(t, r, p, cpu, i)
		start := time.Now()
		n, err := r.Poll(timeout, Handler{})
		if elapsed := time.Since(start); n != 0 || err != nil || elapsed < timeout {
			t.Fatalf("try %d: Poll(%v) = %d, %v after %v", i, timeout, n, err, elapsed)
		}
	}

	// Without one: not until a record comes.
	for i := 0; i < 5; i++ {
		stalePerfWakeup(t, r, p, cpu, 10+2*i)
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		got := -1
		go func() {
			n, err := r.Poll(-1, Handler{Sample: func(_ int, d []byte) { got = int(getU32(d[4:])) }})
			done <- result{n, err}
		}()
		select {
		case res := <-done:
			t.Fatalf("try %d: Poll(-1) returned %d, %v with no record", i, res.n, res.err)
		case <-time.After(50 * time.Millisecond):
		}
		emitSeq(t, p, cpu, 11+2*i, 12+2*i)
		select {
		case res := <-done:
			if res.n != 1 || res.err != nil || got != 11+2*i {
				t.Fatalf("try %d: Poll(-1) = %d, %v, record %d", i, res.n, res.err, got)
			}
		case <-time.After(10 * time.Second): // a guard against a hang, nothing is timed
			t.Fatalf("try %d: Poll(-1) still blocked after a record", i)
		}
	}
}
