package bench

import (
	"testing"
	"time"
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

// TestSpan checks that a drain's span runs from its first record to its
// last, whatever the count, and that a new start forgets the last drain.
func TestSpan(t *testing.T) {
	for _, k := range []int{1, 2, 5} {
		var s span
		for range 2 {
			s.start(k)
			before := time.Now()
			for i := range k {
				if i == k-1 {
					time.Sleep(time.Millisecond)
				}
				s.mark()
			}
			if s.first.Before(before) {
				t.Errorf("k=%d: the span began before its first record", k)
			}
			if k == 1 && s.length() != 0 {
				t.Errorf("k=1: span %v, want 0 for one record", s.length())
			}
			if k > 1 && s.length() < time.Millisecond {
				t.Errorf("k=%d: span %v leaves out the last record", k, s.length())
			}
		}
	}
}
