package eventpipe

import (
	"math"
	"time"
)

// merge delivers the records of every perf ring (of every perf source and
// simulated source) in timestamp order: a k-way merge over the rings' head
// records.
//
// Each ring's head is peeked and held in place (ringbuf's Peek: the record
// stays in the ring, which the kernel does not overwrite until the tail
// moves past it, so nothing is copied; a record wrapping the ring's end
// sits in that ring's preallocated scratch buffer). The oldest head goes
// out when every ring holds a head (every other CPU has passed its time),
// or when it is ReorderWindow old; otherwise the kick timer is armed for
// the moment it will be. A ring is only ever advanced past its own head,
// so records of one CPU keep their order whatever their times; a record
// older than the latest delivered one is late: delivered at once (it is
// the oldest head), counted, never dropped.
//
// Choosing the oldest head looks at every ring; after that, the chosen
// ring's records go out for as long as they are no later than every other
// ring's head (and, while a ring holds no head, old enough), in one
// ConsumeUntil call that runs the ring's own loop: a burst on one CPU costs
// one scan and one call, not one of each per record.
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
	// One claim of each reader for the whole run, not one per Peek and
	// Advance.
	for _, s := range p.perf {
		if err := s.rings.Begin(); err != nil {
			p.fail(err)
			continue
		}
		s.inMerge = true
		p.inMerge = append(p.inMerge, s)
	}
	now := uint64(0)
	for !p.closed {
		bi, second, all := p.scanHeads()
		if p.closed || bi < 0 {
			return
		}
		best := &p.heads[bi]
		until := second
		if !all {
			// A ring holds no head: records go out only once they are
			// ReorderWindow old, the oldest first. ripe is the latest
			// time that is; until never falls below the head's time, so
			// the run delivers at least the head.
			t := best.s.Time
			if t > p.ripe(now) {
				now = p.clock.now()
			}
			ripe := p.ripe(now)
			if t > ripe {
				_ = p.kick.Start(time.Duration(min(t-ripe, math.MaxInt64)), 0)
				return
			}
			until = min(until, ripe)
		}
		// The run starts with the held head; the ring holds the first
		// record past until as its new head, or runs dry.
		from, ring, dst := best.src, best.ring, &best.s
		best.ok = false
		p.readerCalls++
		_, ok, err := from.rings.ConsumeUntil(ring, until, p.mergeHandler, dst)
		if p.closed {
			return
		}
		if err != nil {
			p.fail(err)
		}
		if ok {
			h := &p.heads[bi]
			if &h.s != dst {
				h.s = *dst // a handler attached a source, which moved p.heads
			}
			h.ok = true
		}
	}
}

// ripe is the latest record time that is ReorderWindow old at now.
func (p *Pipe) ripe(now uint64) uint64 {
	if now < p.window {
		return 0
	}
	return now - p.window
}

// mergeSample is the merge runs' Handler.SampleAt: a record that goes out
// after a later one is late, counted, delivered all the same.
func (p *Pipe) mergeSample(cpu int, at uint64, rec []byte) {
	// Small enough to be inlined into the method value's wrapper, which
	// the run calls: one call per record less.
	if at < p.lastTime {
		p.lateRouted++
	} else {
		p.lastTime = at
	}
	p.route(cpu, at, rec)
}

// scanHeads peeks every ring of a claimed source that has no head held,
// and returns the index in p.heads of the oldest head (-1 if none), the
// oldest time among the other rings' heads (MaxUint64 if none), and
// whether every ring holds a head.
func (p *Pipe) scanHeads() (bi int, second uint64, all bool) {
	bi, second, all = -1, math.MaxUint64, true
	bt := uint64(math.MaxUint64)
	for i := range p.heads {
		h := &p.heads[i]
		if !h.src.inMerge {
			continue // attached during this merge, or not claimed
		}
		if !h.ok {
			p.readerCalls++
			ps, ok, err := h.src.rings.Peek(h.ring, p.lostFn)
			if p.closed {
				return -1, 0, false
			}
			if err != nil {
				p.fail(err)
			}
			h = &p.heads[i] // Peek's lost handler may have attached a source
			if !ok {
				all = false
				continue
			}
			h.s, h.ok = ps, true
		}
		switch t := h.s.Time; {
		case bi < 0:
			bi, bt = i, t
		case t < bt:
			second = bt
			bi, bt = i, t
		case t < second:
			second = t
		}
	}
	return bi, second, all
}

// endMerge ends the readers' claims, also when a handler panicked (the
// record it was given counts as delivered: ConsumeUntil consumed it before
// the call, so it does not come back to panic again); a reader closed
// meanwhile is released here.
func (p *Pipe) endMerge(panicked bool) {
	p.flushRouted()
	if panicked && !p.closed {
		p.wake() // the records after it wait for no wakeup: come back for them
	}
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
