package loop

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
