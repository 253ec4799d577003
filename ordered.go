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
	for !p.closed {
		var best *heldRecord
		var from *perfSource
		ring := 0
		all := true
		for _, s := range p.perf {
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

func (p *Pipe) endMerge() { p.merging = false }
