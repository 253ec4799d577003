package bench

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// percentile returns the q-quantile (0 < q <= 1) of sorted by the
// nearest-rank method: the smallest sample with at least q of all samples at
// or below it.
func percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// reportLatency reports the median and 99th percentile of samples (in ns).
// It sorts samples in place.
func reportLatency(b *testing.B, samples []int64) {
	b.Helper()
	slices.Sort(samples)
	b.ReportMetric(float64(percentile(samples, 0.50)), "p50-ns")
	b.ReportMetric(float64(percentile(samples, 0.99)), "p99-ns")
}

// pinToCPU locks the calling goroutine to its thread and that thread to
// cpu, so that a BPF program run by this thread's sends writes into cpu's
// perf ring. The returned function restores the thread's former affinity
// before unlocking it, so no pinned thread goes back to the runtime's pool.
func pinToCPU(tb testing.TB, cpu int) (unpin func()) {
	tb.Helper()
	runtime.LockOSThread()
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("sched_getaffinity: %v", err)
	}
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("sched_setaffinity(CPU %d): %v", cpu, err)
	}
	return func() {
		if err := unix.SchedSetaffinity(0, &old); err != nil {
			// Leave the thread locked: it ends with the goroutine
			// rather than serve others with the wrong affinity.
			tb.Errorf("restoring affinity: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}
}

// spin busy-waits for d without giving up the thread, so that the gap it
// makes does not itself involve the scheduler or a timer.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// splitN divides n items among k workers as evenly as possible.
func splitN(n, k int) []int {
	parts := make([]int, k)
	for i := range parts {
		parts[i] = n / k
		if i < n%k {
			parts[i]++
		}
	}
	return parts
}
