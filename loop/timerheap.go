package loop

import (
	"cmp"
	"math/bits"
	"slices"
)

// timerHeap is a 4-ary min-heap of timers ordered by due time, then start
// order. The keys live in the heap array itself, so a sift compares
// neighbouring memory instead of chasing a pointer per comparison (with a
// million timers that is the difference between cache hits and misses), and
// four children per node halve the depth, as in the Go runtime's own timer
// heap. Each timer knows its index, so Stop removes it in O(log n).
type timerHeap []timerEntry

type timerEntry struct {
	due int64
	seq uint64
	t   *Timer
}

func (a *timerEntry) before(b *timerEntry) bool {
	if a.due != b.due {
		return a.due < b.due
	}
	return a.seq < b.seq
}

func (h *timerHeap) push(e timerEntry) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

func (h *timerHeap) remove(t *Timer) {
	s := *h
	i := int(t.index)
	last := len(s) - 1
	t.index = -1
	moved := s[last]
	s[last] = timerEntry{}
	*h = s[:last]
	if i == last {
		return
	}
	s[i] = moved
	s[i].t.index = int32(i)
	if i > 0 && s[i].before(&s[(i-1)/4]) {
		h.up(i)
	} else {
		h.down(i)
	}
}

// up moves the entry at i toward the root, shifting parents down into the
// hole instead of swapping, so each level writes one entry.
func (h timerHeap) up(i int) {
	e := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if !e.before(&h[p]) {
			break
		}
		h[i] = h[p]
		h[i].t.index = int32(i)
		i = p
	}
	h[i] = e
	e.t.index = int32(i)
}

func (h timerHeap) down(i int) {
	e := h[i]
	n := len(h)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if h[j].before(&h[m]) {
				m = j
			}
		}
		if !h[m].before(&e) {
			break
		}
		h[i] = h[m]
		h[i].t.index = int32(i)
		i = m
	}
	h[i] = e
	e.t.index = int32(i)
}

// popMin removes and returns the earliest entry, Floyd's way: the hole
// left at the root sinks along the smaller child to the bottom (three
// comparisons a level, where sifting the last entry down from the root
// takes four), and the last entry fills it there, rising as far as it
// must, which is rarely far: it came from the bottom. The timer returned
// keeps its stale index (see takeDue).
func (h *timerHeap) popMin() timerEntry {
	s := *h
	top := s[0]
	last := len(s) - 1
	e := s[last]
	s[last] = timerEntry{}
	s = s[:last]
	*h = s
	if last == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= last {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < last; j++ {
			if s[j].before(&s[m]) {
				m = j
			}
		}
		s[i] = s[m]
		s[i].t.index = int32(i)
		i = m
	}
	s[i] = e
	s.up(i)
	return top
}

// bulkShare is when takeDue stops popping: once the timers taken one by
// one reach 1/bulkShare of those left, the rest that are due are taken in
// one sweep of the array, which costs about what those pops did.
const (
	bulkShare = 16
	bulkMin   = 256 // below this many timers, popping is always cheaper
)

// takeDue appends every entry due at now (due <= now) to out, earliest
// first (due time, then start order), and takes it off the heap. The
// timers taken keep their stale index, for the caller to reset: it
// touches each of them anyway, and with a million timers each touch is a
// cache miss, so it is done once, in firing order.
//
// A few due timers are popped one by one, at O(log n) each. When many are
// due (a loop that was blocked, a burst of timers with one deadline), the
// rest are partitioned out of the array in one pass, sorted, and the heap
// rebuilt from what is left, in O(n): each of them then costs a share of
// a sort of the due ones instead of a sift through the whole heap. All
// popped entries come before all swept ones, so out stays in order.
func (h *timerHeap) takeDue(now int64, out []timerEntry) []timerEntry {
	for n := 0; len(*h) > 0 && (*h)[0].due <= now; n++ {
		if n*bulkShare >= len(*h) && len(*h) >= bulkMin {
			return h.sweepDue(now, out)
		}
		out = append(out, h.popMin())
	}
	return out
}

// sweepDue moves every due entry of the array to out, sorted, keeps the
// others in place and restores the heap over them.
func (h *timerHeap) sweepDue(now int64, out []timerEntry) []timerEntry {
	s := *h
	from := len(out)
	keep := 0
	for i := range s {
		e := s[i]
		if e.due <= now {
			out = append(out, e)
			continue
		}
		if keep != i {
			s[keep] = e
			e.t.index = int32(keep)
		}
		keep++
	}
	clear(s[keep:])
	s = s[:keep]
	*h = s
	for i := (keep - 2) / 4; keep > 1 && i >= 0; i-- {
		s.down(i)
	}
	sortEntries(out[from:], bits.Len(uint(len(out)-from))*2)
	return out
}

// sortEntries sorts s by due time, then start order: a quicksort
// specialised to timerEntry, so that each comparison is a few inline
// instructions where the generic sort calls a function. The keys are unique
// (start order is), so equal keys cannot slow it down; an unlucky layout
// that takes it deeper than depth levels is left to the generic sort, whose
// worst case is bounded.
func sortEntries(s []timerEntry, depth int) {
	for len(s) > 12 {
		if depth == 0 {
			slices.SortFunc(s, compareEntries)
			return
		}
		depth--
		// The median of the first, middle and last entries is the pivot,
		// at s[0].
		m, z := len(s)/2, len(s)-1
		if s[m].before(&s[0]) {
			s[m], s[0] = s[0], s[m]
		}
		if s[z].before(&s[m]) {
			s[z], s[m] = s[m], s[z]
			if s[m].before(&s[0]) {
				s[m], s[0] = s[0], s[m]
			}
		}
		s[0], s[m] = s[m], s[0]
		p := s[0]
		i, j := 1, z
		for {
			for s[i].before(&p) {
				i++
			}
			for p.before(&s[j]) {
				j--
			}
			if i >= j {
				break
			}
			s[i], s[j] = s[j], s[i]
			i++
			j--
		}
		s[0], s[j] = s[j], s[0]
		// Recurse into the smaller side, loop on the larger: the stack
		// stays O(log n).
		if j < len(s)-j {
			sortEntries(s[:j], depth)
			s = s[j+1:]
		} else {
			sortEntries(s[j+1:], depth)
			s = s[:j]
		}
	}
	for i := 1; i < len(s); i++ {
		e := s[i]
		j := i
		for ; j > 0 && e.before(&s[j-1]); j-- {
			s[j] = s[j-1]
		}
		s[j] = e
	}
}

func compareEntries(a, b timerEntry) int {
	if a.due != b.due {
		return cmp.Compare(a.due, b.due)
	}
	return cmp.Compare(a.seq, b.seq)
}
