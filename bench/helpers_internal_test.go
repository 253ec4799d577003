package bench

import (
	"testing"
)

func TestPercentile(t *testing.T) {
	s := []int64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	cases := []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.99, 100}, {0.1, 10}, {0.11, 20}, {1, 100}}
	for _, c := range cases {
		if got := percentile(s, c.q); got != c.want {
			t.Errorf("percentile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %d, want 0", got)
	}
	if got := percentile([]int64{7}, 0.99); got != 7 {
		t.Errorf("percentile of one sample = %d, want 7", got)
	}
}

func TestSplitN(t *testing.T) {
	for _, c := range []struct{ n, k int }{{10, 4}, {1, 4}, {0, 1}, {1000003, 4}} {
		parts := splitN(c.n, c.k)
		sum, lo, hi := 0, parts[0], parts[0]
		for _, p := range parts {
			sum += p
			lo, hi = min(lo, p), max(hi, p)
		}
		if sum != c.n || hi-lo > 1 || len(parts) != c.k {
			t.Errorf("splitN(%d, %d) = %v", c.n, c.k, parts)
		}
	}
}
