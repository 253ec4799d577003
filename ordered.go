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
// Choosing the oldest head looks at every ring; after that, records of the
// chosen ring go out one after another for as long as they are older than
// every other ring's head, without looking again (a burst on one CPU costs
// one scan, not one per record).
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
		// An index, not a pointer: a handler may attach a source, which
		// grows p.heads.
		best := &p.heads[bi]
		from, ring := best.src, best.ring
		for {
			if !all {
				due := best.s.Time + p.window
				if due > now {
					now = p.clock.now()
				}
				if due > now {
					_ = p.kick.Start(time.Duration(due-now), 0)
					return
				}
			}
			at := best.s.Time
			if at < p.lastTime {
				p.late.Add(1)
			} else {
				p.lastTime = at
			}
			best.ok = false
			p.routing, p.routingRing = from, ring
			p.route(best.s.CPU, at, best.s.Data)
			p.routing = nil
			if p.closed {
				return
			}
			best = &p.heads[bi]
			// Past the record delivered, to the ring's next, in one call.
			p.readerCalls++
			ok, err := from.rings.Next(ring, p.lostFn, &best.s)
			if p.closed {
				return
			}
			if err != nil {
				p.fail(err)
			}
			if !ok {
				break // the ring ran dry: look at all of them again
			}
			best.ok = true
			if best.s.Time > second {
				break // another ring's head is older now
			}
		}
	}
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

// endMerge ends the readers' claims, also when a handler panicked; a
// reader closed meanwhile is released here.
func (p *Pipe) endMerge(panicked bool) {
	p.flushRouted()
	if s := p.routing; s != nil {
		// A handler panicked: its record counts as delivered, as in
		// ringbuf's Consume, so that it does not come back to panic again.
		p.routing = nil
		if !p.closed {
			_, _ = s.rings.Advance(p.routingRing)
		}
	}
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
