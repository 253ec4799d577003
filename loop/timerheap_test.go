package loop

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTimerHeapOrder checks the heap against a sort, through random pushes
// and removals from the middle.
func TestTimerHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h timerHeap
	var live []*Timer
	seq := uint64(0)
	for range 5000 {
		if len(live) > 0 && r.IntN(3) == 0 {
			k := r.IntN(len(live))
			h.remove(live[k])
			if live[k].index != -1 {
				t.Fatal("removed timer keeps an index")
			}
			live = append(live[:k], live[k+1:]...)
		} else {
			tm := &Timer{index: -1}
			h.push(timerEntry{due: int64(r.IntN(100)), seq: seq, t: tm})
			seq++
			live = append(live, tm)
		}
		for i, e := range h {
			if int(e.t.index) != i {
				t.Fatalf("entry %d has index %d", i, e.t.index)
			}
			if i > 0 && e.before(&h[(i-1)/4]) {
				t.Fatalf("heap order broken at %d", i)
			}
		}
	}
	var prev *timerEntry
	for len(h) > 0 {
		m := h[0]
		h.remove(m.t)
		if prev != nil && m.before(prev) {
			t.Fatalf("popped (%d,%d) after (%d,%d)", m.due, m.seq, prev.due, prev.seq)
		}
		prev = &m
	}
}

// TestTimerHeapTakeDue checks takeDue against a sort, for heaps small enough
// to be popped one by one and big enough to be swept, with few, many and
// all of their timers due: what it takes is every due entry in (due, start)
// order, with no index left, and what it leaves is a heap of the others.
func TestTimerHeapTakeDue(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 10, bulkMin - 1, bulkMin, 5000} {
		for _, share := range []float64{0, 0.01, 0.2, 0.9, 1} {
			var h timerHeap
			for seq := range n {
				// Few distinct due times: many ties, which start
				// order must break.
				h.push(timerEntry{due: int64(r.IntN(50)), seq: uint64(seq), t: &Timer{index: -1}})
			}
			now := int64(share*50) - 1
			want := 0
			for _, e := range h {
				if e.due <= now {
					want++
				}
			}
			out := h.takeDue(now, []timerEntry{{}}) // appends after what is there
			got := out[1:]
			for _, e := range got {
				e.t.index = -1 // the caller's part
			}
			if len(got) != want {
				t.Fatalf("n=%d now=%d: took %d, want %d", n, now, len(got), want)
			}
			for i, e := range got {
				if e.due > now || e.t.index != -1 {
					t.Fatalf("n=%d now=%d: took (%d,%d) with index %d", n, now, e.due, e.seq, e.t.index)
				}
				if i > 0 && !got[i-1].before(&e) {
					t.Fatalf("n=%d now=%d: (%d,%d) after (%d,%d)", n, now, e.due, e.seq, got[i-1].due, got[i-1].seq)
				}
			}
			if len(h)+len(got) != n {
				t.Fatalf("n=%d now=%d: %d left and %d taken", n, now, len(h), len(got))
			}
			for i, e := range h {
				if e.due <= now || int(e.t.index) != i {
					t.Fatalf("n=%d now=%d: left (%d,%d) at %d with index %d", n, now, e.due, e.seq, i, e.t.index)
				}
				if i > 0 && e.before(&h[(i-1)/4]) {
					t.Fatalf("n=%d now=%d: heap order broken at %d", n, now, i)
				}
			}
		}
	}
}

// TestSortEntries checks the due-list sort against the generic one, with the
// depth bound reached (the generic fallback) and not.
func TestSortEntries(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	// Layouts that trouble a quicksort: sorted, reversed, organ pipe, and
	// random with many equal due times.
	layouts := map[string]func(i, n int) timerEntry{
		"random":    func(i, n int) timerEntry { return timerEntry{due: int64(r.IntN(20)), seq: r.Uint64()} },
		"sorted":    func(i, n int) timerEntry { return timerEntry{due: int64(i), seq: uint64(i)} },
		"reversed":  func(i, n int) timerEntry { return timerEntry{due: int64(n - i), seq: uint64(i)} },
		"organpipe": func(i, n int) timerEntry { return timerEntry{due: int64(min(i, n-i)), seq: uint64(i)} },
	}
	for name, layout := range layouts {
		testSortLayout(t, name, layout)
	}
}

func testSortLayout(t *testing.T, name string, layout func(i, n int) timerEntry) {
	for _, n := range []int{0, 1, 2, 12, 13, 14, 100, 3000} {
		for _, depth := range []int{0, 1, 64} {
			s := make([]timerEntry, n)
			for i := range s {
				s[i] = layout(i, n)
			}
			want := slices.Clone(s)
			slices.SortFunc(want, compareEntries)
			sortEntries(s, depth)
			if !slices.Equal(s, want) {
				t.Fatalf("%s, n=%d depth=%d: not sorted", name, n, depth)
			}
		}
	}
}
