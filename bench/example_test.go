package bench

import "fmt"

// The latency benchmarks report percentiles by the nearest-rank method: p99
// of 10 samples is the largest, p50 the fifth.
func Example_percentile() {
	samples := []int64{900, 1000, 1100, 1200, 1300, 1400, 1500, 1600, 1700, 9000}
	fmt.Println(percentile(samples, 0.50), percentile(samples, 0.99))
	// Output: 1300 9000
}
