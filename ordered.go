package eventpipe

import (
	"math"
	"time"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// mergeWindow is how many samples the merge peeks from a ring at a time
// while the ring's runs are short: enough that the reader's call per
// window is small beside the records' own cost, few enough that the
// windows of a many-CPU pipe stay small (40 bytes a sample, per ring). A
// ring whose records come in bursts is peeked one sample at a time
// instead (see mergeRing.want).
const mergeWindow = 32

// mergeRing is one perf ring as the merge sees it: a window of its next
// samples, peeked in place (ringbuf's PeekRun: the records stay in the
// ring, which the kernel does not overwrite until the tail moves past
// them, so nothing is copied), and how many of them went out.
type mergeRing struct {
	src    *perfSource
	ring   int
	win    []ringbuf.PerfSample // len is what the latest PeekRun found
	next   int                  // the first sample of win not delivered
	queued bool                 // on the merge's heap: its window holds a sample

	// want is how many samples the next window peeks: mergeWindow after
	// a run that ended inside its window or right at its end (records
	// that alternate between CPUs, where a window saves a reader call per
	// record), 1 after a run that went on in the ring's own loop (a
	// burst, which that loop reads once: a wider window would have read
	// its first records twice, once to compare and once to deliver).
	// Rings start at 1, as a pipe's first records are as likely a burst
	// as not, and a one-sample window costs alternating records only one
	// ConsumeUntil per ring before the windows widen.
	want int
}

// mergeHead is a heap entry: a ring and the time of its window's next
// sample, kept beside the pointer so that the heap's comparisons read
// nothing else.
type mergeHead struct {
	t uint64
	r *mergeRing
}

// addHeads gives the merge a window for each of s's rings.
func (p *Pipe) addHeads(s *perfSource) {
	for i := range s.rings.Rings() {
		p.heads = append(p.heads, &mergeRing{src: s, ring: i, win: make([]ringbuf.PerfSample, 0, mergeWindow), want: 1})
	}
}

// merge delivers the records of every perf ring (of every perf source and
// simulated source) in timestamp order: a k-way merge over the rings'
// windows, with a binary heap of the rings by the time of their next
// sample.
//
// The oldest next sample goes out when every ring has one (every other
// CPU has passed its time), or when it is ReorderWindow old; otherwise
// the kick timer is armed for the moment it will be. A ring's samples go
// out in the ring's order, so records of one CPU keep their order
// whatever their times; a record older than the latest delivered one is
// late: delivered at once (it is the oldest next sample), counted, never
// dropped.
//
// The ring on top of the heap delivers for as long as its samples are no
// later than the next ring's (and, while a ring has none, old enough):
// first from its window, in a loop that calls nothing but the handler, so
// that records alternating between CPUs cost a heap step each; a run that
// goes past its window continues in the ring's own loop (ConsumeUntil),
// so that a burst on one CPU is read once, as an unordered drain reads it,
// and the ring's next window is a single sample (mergeRing.want).
func (p *Pipe) merge() {
	if p.merging {
		return // a handler's call that led back here; the outer run goes on
	}
	p.merging = true
	finished := false
	defer func() { p.endMerge(!finished) }()
	p.mergeRun()
	finished = true
}

// mergeRun is merge's body, between the claims and their end.
func (p *Pipe) mergeRun() {
	// One claim of each reader for the whole run, not one per window.
	for _, s := range p.perf {
		if err := s.rings.Begin(); err != nil {
			p.fail(err)
			continue
		}
		s.inMerge = true
		p.inMerge = append(p.inMerge, s)
	}
	// Rings that joined (attached from a handler) after the claims wait
	// for the next merge; the others are on the heap or counted empty.
	heads := p.heads
	empty := 0
	for _, r := range heads {
		if !r.src.inMerge {
			continue
		}
		if !p.fill(r) {
			if p.closed {
				return
			}
			empty++
		}
	}
	now := uint64(0)
	for len(p.order) > 0 {
		until := uint64(math.MaxUint64)
		if empty > 0 {
			// A ring had no sample when last looked at: look again (the
			// kernel may have written since), as what it finds may be
			// older than every head on the heap.
			if empty = p.fillEmpty(heads, empty); p.closed {
				return
			}
		}
		top := &p.order[0]
		if len(p.order) > 1 {
			until = p.order[1].t
			if len(p.order) > 2 {
				until = min(until, p.order[2].t)
			}
		}
		if empty > 0 {
			// Records go out only once they are ReorderWindow old, the
			// oldest first. ripe is the latest time that is; until never
			// falls below the head's time, so the run delivers at least
			// the head.
			if top.t > p.ripe(now) {
				now = p.clock.now()
			}
			ripe := p.ripe(now)
			if top.t > ripe {
				_ = p.kick.Start(time.Duration(min(top.t-ripe, math.MaxInt64)), 0)
				return
			}
			until = min(until, ripe)
		}
		// The run: r's samples for as long as they are no later than
		// until, the first always (it is the oldest). Each counts as gone
		// before its handler runs, so that a handler that panics does not
		// get it again (endMerge consumes it). Written out here rather
		// than in a function of its own: records that alternate between
		// CPUs make runs of one, and a call per run shows. The category
		// lookup is inlined, as in consumeRing.
		r := top.r
		win, i := r.win, r.next
		for {
			s := &win[i]
			i++
			r.next = i
			at := s.Time
			if at < p.lastTime {
				p.lateRouted++
			} else {
				p.lastTime = at
			}
			fn, cat, payload, ok := p.lookup(s.Data)
			if !ok {
				p.misroute(s.CPU, s.Data)
			} else if fn != nil {
				fn(Event{Category: cat, CPU: s.CPU, Time: at, Payload: payload})
			}
			if p.closed {
				return
			}
			if i == len(win) || win[i].Time > until {
				break
			}
		}
		if r.next == len(win) {
			// The run used up the window: it goes on in the ring's own
			// loop (ConsumeUntil), which reads and delivers each record
			// in one pass, where a window is read once to be compared
			// and again to be delivered. A burst on one CPU costs that
			// loop's price per record, as an unordered drain would; the
			// run stops at the first record past until, which the next
			// window starts with.
			p.consumeWindow(r)
			p.readerCalls++
			n, _, err := r.src.rings.ConsumeUntil(r.ring, until, p.mergeHandler, nil)
			if p.closed {
				return
			}
			if err != nil {
				p.fail(err)
			}
			if r.want = mergeWindow; n > 0 {
				r.want = 1
			}
		}
		if r.next < len(r.win) || p.fill(r) {
			p.order[0].t = r.win[r.next].Time
			p.heapDown(0)
			continue
		}
		if p.closed {
			return
		}
		p.heapPop()
		empty++
	}
}

// fill consumes what r's window delivered and peeks the next window; it
// reports whether the window holds a sample, and puts r on the heap when
// it does and is not there yet.
func (p *Pipe) fill(r *mergeRing) bool {
	p.consumeWindow(r)
	p.readerCalls++
	n, err := r.src.rings.PeekRun(r.ring, p.lostFn, r.win[:r.want])
	if p.closed {
		return false
	}
	if err != nil {
		p.fail(err)
	}
	r.win, r.next = r.win[:n], 0
	if n == 0 {
		return false
	}
	if !r.queued {
		p.heapPush(r)
	}
	return true
}

// fillEmpty peeks every claimed ring that is not on the heap and returns
// how many are still empty.
func (p *Pipe) fillEmpty(heads []*mergeRing, empty int) int {
	for _, r := range heads {
		if r.queued || !r.src.inMerge {
			continue
		}
		if p.fill(r) {
			empty--
		} else if p.closed {
			return empty
		}
	}
	return empty
}

// consumeWindow consumes the samples of r's window that went out.
func (p *Pipe) consumeWindow(r *mergeRing) {
	if r.next == 0 {
		return
	}
	p.readerCalls++
	if _, err := r.src.rings.AdvanceRun(r.ring, r.next); err != nil && !p.closed {
		p.fail(err)
	}
	r.win, r.next = r.win[:0], 0
}

// mergeSample is the Handler.SampleAt of the merge's runs in a ring's own
// loop (ConsumeUntil): as the window's loop does, a record that goes out
// after a later one is late, counted, delivered all the same.
func (p *Pipe) mergeSample(cpu int, at uint64, rec []byte) {
	if at < p.lastTime {
		p.lateRouted++
	} else {
		p.lastTime = at
	}
	p.route(cpu, at, rec)
}

// ripe is the latest record time that is ReorderWindow old at now.
func (p *Pipe) ripe(now uint64) uint64 {
	if now < p.window {
		return 0
	}
	return now - p.window
}

// endMerge consumes what the windows delivered, also when a handler
// panicked (the record it was given counts as delivered, so it does not
// come back to panic again), and ends the readers' claims; a reader
// closed meanwhile is released here. The windows' other samples stay in
// their rings for the next merge to peek again.
func (p *Pipe) endMerge(panicked bool) {
	p.flushRouted()
	if panicked && !p.closed {
		p.wake() // the records after it wait for no wakeup: come back for them
	}
	for _, r := range p.heads {
		if r.src.inMerge && !p.closed {
			p.consumeWindow(r)
		}
		r.win, r.next, r.queued = r.win[:0], 0, false
	}
	clear(p.order)
	p.order = p.order[:0]
	for i, s := range p.inMerge {
		s.inMerge = false
		if err := s.rings.End(); err != nil && !p.closed {
			p.fail(err)
		}
		p.inMerge[i] = nil
	}
	p.inMerge = p.inMerge[:0]
	p.merging = false
}

// The heap of rings by their next sample's time (p.order), smallest on
// top: a hand-written binary heap, as container/heap's interface calls
// would cost more than the comparisons.

func (p *Pipe) heapPush(r *mergeRing) {
	r.queued = true
	p.order = append(p.order, mergeHead{t: r.win[r.next].Time, r: r})
	h := p.order
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent].t <= h[i].t {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

func (p *Pipe) heapPop() {
	h := p.order
	h[0].r.queued = false
	last := len(h) - 1
	h[0] = h[last]
	h[last] = mergeHead{}
	p.order = h[:last]
	if last > 0 {
		p.heapDown(0)
	}
}

func (p *Pipe) heapDown(i int) {
	h := p.order
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].t < h[c].t {
			c++
		}
		if h[i].t <= h[c].t {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
