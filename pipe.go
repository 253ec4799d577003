//go:build linux

package eventpipe

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// DefaultReorderWindow is Options.ReorderWindow when it is 0.
const DefaultReorderWindow = time.Millisecond

// Options configures New. The zero value is a pipe that delivers records
// as the kernel wakes it, unordered, with no latency bound.
type Options struct {
	// MaxLatency, when positive, bounds how long a record waits in a ring
	// once written, whatever the sources' wakeup settings (a perf source
	// with a large WakeupEvents or Watermark is not woken for every
	// record): a loop timer of this period looks at every ring's head and
	// tail positions and drains those that hold records. A tick that finds
	// every ring empty makes no system call and calls no reader. On an
	// Ordered pipe a record found this way may then be held up to
	// ReorderWindow more, waiting for the other CPUs. 0 turns it off.
	MaxLatency time.Duration
	// Ordered merges the records of all perf sources (and simulated ones)
	// across CPUs in the order of the kernel's timestamps: the pipe opens
	// perf events with PERF_SAMPLE_TIME on CLOCK_MONOTONIC and sets
	// Event.Time. A record is held (in its ring, not copied) until every
	// other ring holds a later record or until it is ReorderWindow old.
	// Within one ring records keep their order even when their times go
	// backwards; a record older than one already delivered is delivered
	// anyway and counted in Stats.Late, never dropped. Ring buffer records
	// carry no timestamp and are delivered as they come.
	Ordered bool
	// ReorderWindow is how long an Ordered pipe holds a record waiting for
	// other CPUs; 0 means DefaultReorderWindow.
	ReorderWindow time.Duration
}

// Stats counts what the pipe has done. All fields only grow.
type Stats struct {
	// Delivered counts records handed to a registered category's handler;
	// it is updated once per drain of a source (or per merge pass), so a
	// handler reading it sees the records of earlier drains.
	Delivered uint64
	Lost      uint64 // records the kernel reported lost (PERF_RECORD_LOST counts)
	Late      uint64 // Ordered: records delivered after a record with a later time; updated as Delivered is
	Errors    uint64 // short records, unknown categories, corrupt rings, reader errors
	// RingDropped is the sum of the drop counter map named by CountDrops:
	// records BPF programs could not write into a full ring buffer.
	RingDropped uint64
}

// Pipe is the EventPipe: any number of perf event arrays, BPF ring buffers
// and simulated sources, one registry of handlers by category, and dispatch,
// on one loop. It is used from the loop's goroutine only, except Stats.
type Pipe struct {
	l        *loop.Loop
	opts     Options
	window   uint64 // ReorderWindow in nanoseconds
	handlers []func(Event)
	onLost   func(cpu int, count uint64)
	onError  func(err error)

	perf  []*perfSource
	rings []*ringSource

	kick  *loop.Timer // runs a drain soon (sims), or when a held record's window ends
	tick  *loop.Timer // MaxLatency; nil when off
	check *loop.Hook  // drains perf rings whose wakeup someone else's readiness check took

	// Callbacks given to the readers, made once so that a drain
	// allocates nothing.
	perfHandler  ringbuf.Handler
	mergeHandler ringbuf.Handler // the merge's runs in a ring's own loop (ConsumeUntil)
	lostFn       func(int, uint64)
	partClosed   func()

	clock    monoClock
	lastTime uint64 // Ordered: time of the latest record delivered in order
	merging  bool
	inMerge  []*perfSource // sources a merge has claimed (Begin), to End
	heads    []*mergeRing  // Ordered: every perf ring's window (addHeads)
	order    []mergeHead   // the merge's heap of the rings with a sample

	closed bool

	drops dropCounter

	delivered, lost, late, errs atomic.Uint64
	readerCalls                 uint64 // Consume, PeekRun, AdvanceRun and ConsumeUntil calls, for tests
	routed                      uint64 // delivered, not yet in delivered (flushRouted)
	lateRouted                  uint64 // late, not yet in late (flushRouted)
}

// New creates a pipe on l with no sources and no categories. Negative
// durations are errors wrapping unix.EINVAL, as is a nil loop.
func New(l *loop.Loop, opts Options) (*Pipe, error) {
	if l == nil {
		return nil, fmt.Errorf("eventpipe: new: nil loop: %w", unix.EINVAL)
	}
	if opts.MaxLatency < 0 || opts.ReorderWindow < 0 {
		return nil, fmt.Errorf("eventpipe: new: negative MaxLatency or ReorderWindow: %w", unix.EINVAL)
	}
	if opts.ReorderWindow == 0 {
		opts.ReorderWindow = DefaultReorderWindow
	}
	clock, err := newMonoClock()
	if err != nil {
		return nil, err
	}
	p := &Pipe{l: l, opts: opts, window: uint64(opts.ReorderWindow), clock: clock, drops: dropCounter{fd: -1}}
	p.perfHandler = ringbuf.Handler{SampleAt: p.sample, Lost: p.lostRecord}
	p.mergeHandler = ringbuf.Handler{SampleAt: p.mergeSample, Lost: p.lostRecord}
	p.lostFn = p.lostRecord
	p.partClosed = p.onPartClosed

	p.kick = l.NewTimer(p.onKick)
	// The kick is referenced: while a sim's records or a held record wait
	// for it, the loop stays alive to deliver them.
	p.kick.SetCloseHook(p.partClosed)
	p.check = l.NewCheck(p.onCheck)
	p.check.Unref()
	p.check.SetCloseHook(p.partClosed)
	if opts.MaxLatency > 0 {
		p.tick = l.NewTimer(p.onTick)
		if err := p.tick.Start(opts.MaxLatency, opts.MaxLatency); err != nil {
			p.kick.Close(nil)
			p.check.Close(nil)
			return nil, fmt.Errorf("eventpipe: new: %w", err)
		}
		p.tick.Unref() // the sources' watchers keep the loop alive, not the check
		p.tick.SetCloseHook(p.partClosed)
	}
	return p, nil
}

// Register adds a handler and returns its category id: 0 for the first,
// then 1, 2, ... in registration order, so a BPF program can mirror them in
// an enum. Records whose leading little-endian uint32 is that id reach fn
// (see Event). A nil fn reserves the id: its records are counted as
// delivered and dropped.
func (p *Pipe) Register(fn func(ev Event)) uint32 {
	p.handlers = append(p.handlers, fn)
	return uint32(len(p.handlers) - 1)
}

// OnLost sets the function told of records the kernel dropped because a
// perf ring was full, with the count it reported; nil removes it. The
// counts are also summed in Stats.Lost.
func (p *Pipe) OnLost(fn func(cpu int, count uint64)) { p.onLost = fn }

// OnError sets the function told of records that could not be delivered
// (errors wrapping ringbuf.ErrShortRecord or ringbuf.ErrUnknownCategory),
// of corrupt rings (ringbuf.ErrCorrupt) and of reader failures; nil removes
// it. Each is also counted in Stats.Errors.
func (p *Pipe) OnError(fn func(err error)) { p.onError = fn }

// Stats returns the pipe's counters. It may be called from any goroutine,
// also after Close.
func (p *Pipe) Stats() Stats {
	return Stats{
		Delivered:   p.delivered.Load(),
		Lost:        p.lost.Load(),
		Late:        p.late.Load(),
		Errors:      p.errs.Load(),
		RingDropped: p.drops.sum(),
	}
}

// Close ends the pipe: its watchers and timers are closed, its readers
// closed (which takes their descriptors out of the perf event arrays), the
// maps it created closed, and cb (if not nil) runs on the loop once all of
// its handles are closed. Descriptors given to Attach* stay the caller's.
// Closing a closed pipe does nothing. If a part of the pipe is closed from
// outside (by a function given to the loop's Walk, by Shutdown or by the
// loop's Close), the whole pipe ends as if Close(nil) had been called.
func (p *Pipe) Close(cb func()) {
	if p.closed {
		return
	}
	p.teardown(cb)
}

func (p *Pipe) onPartClosed() {
	if !p.closed {
		p.teardown(nil)
	}
}

// teardown closes everything; cb hangs on the kick timer, which every pipe
// has and which is closed last, so it runs after every other close.
func (p *Pipe) teardown(cb func()) {
	p.closed = true
	var errs []error
	for _, s := range p.perf {
		errs = append(errs, s.close())
	}
	for _, s := range p.rings {
		errs = append(errs, s.close())
	}
	p.perf, p.rings, p.heads = nil, nil, nil
	if p.tick != nil {
		p.tick.Close(nil)
	}
	p.check.Close(nil)
	errs = append(errs, p.drops.close())
	p.kick.Close(cb)
	if err := errors.Join(errs...); err != nil {
		p.fail(err)
	}
}

func (p *Pipe) errIfClosed(what string) error {
	if p.closed {
		return fmt.Errorf("eventpipe: %s: %w", what, os.ErrClosed)
	}
	return nil
}

// fail counts an error and reports it.
func (p *Pipe) fail(err error) {
	p.errs.Add(1)
	if p.onError != nil {
		p.onError(err)
	}
}

// lostRecord receives a PERF_RECORD_LOST count.
func (p *Pipe) lostRecord(cpu int, n uint64) {
	p.lost.Add(n)
	if p.onLost != nil {
		p.onLost(cpu, n)
	}
}

// onKick drains what cannot wake the loop by itself: simulated sources,
// and (Ordered) records held for their window.
func (p *Pipe) onKick() {
	if p.opts.Ordered {
		p.merge()
		return
	}
	finished := false
	defer func() {
		if !finished && !p.closed {
			p.wake() // a handler panicked: come back for the records after it
		}
	}()
	for _, s := range p.perf {
		if s.reader == nil && !p.closed {
			p.consumePerf(s)
		}
	}
	finished = true
}

// onTick is the MaxLatency check: positions only, a drain only where a
// ring holds something.
func (p *Pipe) onTick() {
	p.drainPending(true)
}

// onCheck runs after every poll of the loop. A perf event's wakeup is
// taken by the first readiness check of it, which need not be the loop's
// (a host that embeds the loop polls the loop's descriptor first), so the
// watcher may not fire for records that are there; the rings' positions
// tell, without a system call.
func (p *Pipe) onCheck() {
	p.drainPending(false)
}

// drainPending drains the sources whose rings hold records, judged by
// positions alone; rings too when they asked (ring buffer readiness is a
// level, so the check hook leaves them to their watchers).
func (p *Pipe) drainPending(rings bool) {
	merge := false
	for _, s := range p.perf {
		if p.closed || (!rings && s.reader == nil) || !s.rings.Pending() {
			continue
		}
		if p.opts.Ordered {
			merge = true
		} else {
			p.consumePerf(s)
		}
	}
	for _, s := range p.rings {
		if rings && !p.closed && s.reader.Pending() {
			p.consumeRing(s)
		}
	}
	if merge {
		p.merge()
	}
}
