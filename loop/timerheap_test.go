package loop

import (
	"math/rand/v2"
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
