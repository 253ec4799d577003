//go:build linux

package eventpipe

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// perfRings is what a perf reader and a simulated source share: the pipe
// drains both with the same calls.
type perfRings interface {
	Consume(h ringbuf.Handler) (int, error)
	PeekRun(i int, lost func(cpu int, count uint64), dst []ringbuf.PerfSample) (int, error)
	AdvanceRun(i, n int) (bool, error)
	ConsumeUntil(i int, until uint64, h ringbuf.Handler, head *ringbuf.PerfSample) (int, bool, error)
	Begin() error
	End() error
	Pending() bool
	Rings() int
	Close() error
}

// perfSource is one perf event array (or simulated set of perf rings).
type perfSource struct {
	rings   perfRings
	reader  *ringbuf.PerfReader // nil for a sim
	w       *loop.Watcher       // nil for a sim
	mapFD   int                 // the map the pipe created, -1 for the caller's
	inMerge bool                // Ordered: claimed (Begin) by the merge running
}

func (s *perfSource) close() error {
	if s.w != nil {
		s.w.Close(nil)
	}
	err := s.rings.Close()
	if s.mapFD >= 0 {
		err = errors.Join(err, bpfsys.CloseFD(s.mapFD))
	}
	return err
}

// ringSource is one BPF ring buffer.
type ringSource struct {
	reader *ringbuf.RingReader
	w      *loop.Watcher
	mapFD  int // the map the pipe created, -1 for the caller's
}

func (s *ringSource) close() error {
	s.w.Close(nil)
	err := s.reader.Close()
	if s.mapFD >= 0 {
		err = errors.Join(err, bpfsys.CloseFD(s.mapFD))
	}
	return err
}

// CreatePerfArray creates a BPF_MAP_TYPE_PERF_EVENT_ARRAY with one slot per
// possible CPU and attaches it with PagesPerCPU pagesPerCPU (0: the
// ringbuf default), as the seed's initialize_event_pipe does. It returns
// the map's descriptor, to be given to the BPF program that writes into it
// with bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...). The map is
// the pipe's: it closes with the pipe, and the caller must not close it.
func (p *Pipe) CreatePerfArray(pagesPerCPU int) (mapFD int, err error) {
	if err := p.errIfClosed("create perf array"); err != nil {
		return -1, err
	}
	slots, err := cpuSlots()
	if err != nil {
		return -1, err
	}
	fd, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, uint32(slots), 0, "eventpipe_perf")
	if err != nil {
		return -1, fmt.Errorf("eventpipe: create perf array: %w", err)
	}
	if err := p.attachPerf(fd, ringbuf.PerfOptions{PagesPerCPU: pagesPerCPU}, true); err != nil {
		bpfsys.CloseFD(fd)
		return -1, err
	}
	return fd, nil
}

// AttachPerf reads the perf event array mapFD, opening a ring per CPU as
// ringbuf.NewPerfReader does with opts (an Ordered pipe turns on
// opts.Timestamps). The pipe keeps its own duplicate of mapFD: the caller's
// descriptor stays the caller's, to close when it likes.
func (p *Pipe) AttachPerf(mapFD int, opts ringbuf.PerfOptions) error {
	return p.attachPerf(mapFD, opts, false)
}

func (p *Pipe) attachPerf(mapFD int, opts ringbuf.PerfOptions, owned bool) error {
	if err := p.errIfClosed("attach perf"); err != nil {
		return err
	}
	if p.opts.Ordered {
		opts.Timestamps = true
	}
	r, err := ringbuf.NewPerfReader(mapFD, opts)
	if err != nil {
		return fmt.Errorf("eventpipe: attach perf: %w", err)
	}
	s := &perfSource{rings: r, reader: r, mapFD: -1}
	var cb func(poller.Events)
	if p.opts.Ordered {
		p.addHeads(s)
		cb = func(poller.Events) {
			if err := r.ClearWakeup(); err != nil {
				p.fail(err)
			}
			p.merge()
		}
	} else {
		cb = func(poller.Events) { p.consumePerf(s) }
	}
	w, err := p.l.Watch(r.Fd(), poller.Readable, cb)
	if err != nil {
		r.Close()
		return fmt.Errorf("eventpipe: attach perf: %w", err)
	}
	w.SetCloseHook(p.partClosed)
	s.w = w
	if owned {
		s.mapFD = mapFD
	}
	p.perf = append(p.perf, s)
	if err := p.check.Start(); err != nil {
		p.fail(err) // the watcher still drains: only an embedded loop needs the hook
	}
	return nil
}

// cpuSlots is the number of entries a map keyed by CPU needs: one past
// the highest possible CPU, so a CPU that comes online later has its slot.
func cpuSlots() (int, error) {
	cpus, err := ringbuf.PossibleCPUs()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range cpus {
		n = max(n, c+1)
	}
	return n, nil
}

// consumePerf drains a perf source in arrival order.
func (p *Pipe) consumePerf(s *perfSource) {
	defer p.flushRouted()
	p.readerCalls++
	if _, err := s.rings.Consume(p.perfHandler); err != nil && !p.closed {
		p.fail(fmt.Errorf("eventpipe: %w", err))
	}
}

// CreateRingBuf creates a BPF_MAP_TYPE_RINGBUF of size bytes (a power of
// two and a multiple of the page size, as the kernel requires) and attaches
// it. It returns the map's descriptor, for the BPF program; the map is the
// pipe's and closes with it.
func (p *Pipe) CreateRingBuf(size int) (mapFD int, err error) {
	if err := p.errIfClosed("create ring buffer"); err != nil {
		return -1, err
	}
	if size <= 0 || size > 1<<31 {
		return -1, fmt.Errorf("eventpipe: create ring buffer of %d bytes: %w", size, unix.EINVAL)
	}
	fd, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_RINGBUF, 0, 0, uint32(size), 0, "eventpipe_ring")
	if err != nil {
		return -1, fmt.Errorf("eventpipe: create ring buffer: %w", err)
	}
	if err := p.attachRing(fd, true); err != nil {
		bpfsys.CloseFD(fd)
		return -1, err
	}
	return fd, nil
}

// AttachRing reads the BPF ring buffer mapFD (see ringbuf.NewRingReader).
// The pipe keeps its own duplicate: the caller's descriptor stays the
// caller's.
func (p *Pipe) AttachRing(mapFD int) error { return p.attachRing(mapFD, false) }

func (p *Pipe) attachRing(mapFD int, owned bool) error {
	if err := p.errIfClosed("attach ring"); err != nil {
		return err
	}
	r, err := ringbuf.NewRingReader(mapFD)
	if err != nil {
		return fmt.Errorf("eventpipe: attach ring: %w", err)
	}
	s := &ringSource{reader: r, mapFD: -1}
	w, err := p.l.Watch(r.Fd(), poller.Readable, func(poller.Events) { p.consumeRing(s) })
	if err != nil {
		r.Close()
		return fmt.Errorf("eventpipe: attach ring: %w", err)
	}
	w.SetCloseHook(p.partClosed)
	s.w = w
	if owned {
		s.mapFD = mapFD
	}
	p.rings = append(p.rings, s)
	return nil
}

// consumeRing drains a ring buffer in a batch of its own loop rather than
// through Consume's callback, so that the category lookup is inlined and
// the handler is the one indirect call per record. The deferred calls run
// also when a handler panics: the batch then ends past the record the
// handler was given (it is not delivered again), the reader is released,
// and the records routed so far are counted.
func (p *Pipe) consumeRing(s *ringSource) {
	defer p.flushRouted()
	p.readerCalls++
	b, err := s.reader.Begin()
	if err != nil {
		p.ringFailed(err)
		return
	}
	defer p.endRing(b)
	for b.Next() {
		rec := b.Record()
		fn, cat, payload, ok := p.lookup(rec)
		if !ok {
			p.misroute(-1, rec)
		} else if fn != nil {
			fn(Event{Category: cat, CPU: -1, Payload: payload})
		}
	}
}

func (p *Pipe) endRing(b *ringbuf.RingBatch) {
	if _, err := b.End(); err != nil {
		p.ringFailed(err)
	}
}

// ringFailed reports a ring buffer's error, unless it is the pipe's own
// Close (from a handler) ending the drain.
func (p *Pipe) ringFailed(err error) {
	if !p.closed {
		p.fail(fmt.Errorf("eventpipe: %w", err))
	}
}
