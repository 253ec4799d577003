package eventpipe

import "time"

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
// Choosing the oldest head looks at every ring, O(rings) per record, which
// is cheaper than a heap for the few dozen rings of a machine's CPUs.
func (p *Pipe) merge() {
	if p.merging {
		return // a handler's call that led back here; the outer run goes on
	}
	p.merging = true
	defer p.endMerge()
	// One claim of each reader for the whole run, not one per Peek and
	// Advance.
	for _, s := range p.perf {
		if err := s.rings.Begin(); err != nil {
			p.fail(err)
			continue
		}
		p.inMerge = append(p.inMerge, s)
	}
	for !p.closed {
		var best *heldRecord
		var from *perfSource
		ring := 0
		all := true
		for _, s := range p.inMerge {
			for i := range s.heads {
				h := &s.heads[i]
				if !h.ok {
					p.readerCalls++
					ps, ok, err := s.rings.Peek(i, p.lostFn)
					if p.closed {
						return
					}
					if err != nil {
						p.fail(err)
					}
					if !ok {
						all = false
						continue
					}
					h.s, h.ok = ps, true
				}
				if best == nil || h.s.Time < best.s.Time {
					best, from, ring = h, s, i
				}
			}
		}
		if best == nil {
			return
		}
		if !all {
			due := best.s.Time + p.window
			if now := p.clock.now(); due > now {
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
		p.route(best.s.CPU, at, best.s.Data)
		if p.closed {
			return
		}
		if _, err := from.rings.Advance(ring); err != nil {
			p.fail(err)
		}
	}
}

// endMerge ends the readers' claims, also when a handler panicked; a
// reader closed meanwhile is released here.
func (p *Pipe) endMerge() {
	for i, s := range p.inMerge {
		if err := s.rings.End(); err != nil && !p.closed {
			p.fail(err)
		}
		p.inMerge[i] = nil
	}
	p.inMerge = p.inMerge[:0]
	p.merging = false
}
