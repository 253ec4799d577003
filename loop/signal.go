package loop

import (
	"fmt"
	"math/bits"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Signal is a handle whose callback runs on the loop when the process
// receives one of the signals it was started for, as libuv's uv_signal_t.
//
// The Go runtime owns the process's signal handlers, so a Signal is built
// on os/signal: each loop with started Signals has one os/signal channel
// and one goroutine relaying arrivals to the loop through an internal,
// unreferenced Async. The goroutine starts with the loop's first started
// Signal and ends when the last one stops or closes. Arrivals of one
// signal before its callbacks ran coalesce into one call per handle, as
// the kernel coalesces pending signals.
//
// While any Signal of any loop watches a signal, os/signal delivers it to
// the process instead of its default action (SIGINT no longer ends the
// program, say); when none does any more, the registration is released
// and the default action is back, with no signal.Reset needed.
type Signal struct {
	handle
	cb    func(sig os.Signal)
	sigs  uint64 // bit n-1 set: watches signal n
	relay *signalRelay
}

// maxSignal is the highest signal number Linux has (SIGRTMAX).
const maxSignal = 64

// signalRelay is one loop's side of os/signal: the channel registered for
// the union of its started Signals' sets, the goroutine that reads it, and
// the handles, in start order.
type signalRelay struct {
	l       *Loop
	async   *Async
	ch      chan os.Signal
	swap    chan chan os.Signal
	quit    chan struct{}
	done    chan struct{}
	pending atomic.Uint64 // signals arrived and not yet dispatched
	watched uint64        // the union registered on ch
	handles []*Signal
	scratch []*Signal
	ending  bool
}

// signalBuffer is the room in a relay's channel: os/signal drops an
// arrival that finds it full, harmless here as arrivals coalesce anyway.
const signalBuffer = 16

// relays finds a loop's relay; a map rather than a field of Loop so that
// loops without Signals pay nothing.
var (
	relaysMu sync.Mutex
	relays   = map[*Loop]*signalRelay{}
)

// NewSignal creates a stopped Signal handle that will call cb on the loop.
func (l *Loop) NewSignal(cb func(sig os.Signal)) *Signal {
	s := &Signal{cb: cb}
	s.init(l)
	l.track(s)
	return s
}

// Start watches sigs (syscall.Signal values; SIGKILL and SIGSTOP cannot be
// caught), replacing the set of a started handle. No signal, or one that
// cannot be watched, is EINVAL; a nil callback wraps ErrNilCallback; a
// closing handle or a closed loop wraps os.ErrClosed.
func (s *Signal) Start(sigs ...os.Signal) error {
	if err := s.errIfClosing("signal start"); err != nil {
		return err
	}
	if s.cb == nil {
		return nilError("signal start")
	}
	if len(sigs) == 0 {
		return opError("loop: signal start: no signal", unix.EINVAL)
	}
	var mask uint64
	for _, sig := range sigs {
		n, ok := sig.(syscall.Signal)
		if !ok || n < 1 || n > maxSignal || n == unix.SIGKILL || n == unix.SIGSTOP {
			return opError(fmt.Sprintf("loop: signal start: cannot watch %v", sig), unix.EINVAL)
		}
		mask |= 1 << (n - 1)
	}
	if s.active {
		s.sigs = mask
		s.relay.register()
		return nil
	}
	r, err := s.loop.signalRelay()
	if err != nil {
		return err
	}
	s.sigs, s.relay = mask, r
	r.handles = append(r.handles, s)
	r.register()
	s.setActive(true)
	return nil
}

// Stop stops watching; a signal that arrived and was not yet dispatched is
// not delivered to this handle.
func (s *Signal) Stop() {
	if !s.active {
		return
	}
	r := s.relay
	for i, h := range r.handles {
		if h == s {
			r.handles = append(r.handles[:i], r.handles[i+1:]...)
			break
		}
	}
	s.relay = nil
	s.setActive(false)
	if len(r.handles) == 0 {
		r.end()
	} else {
		r.register()
	}
}

// Close stops the handle and runs cb (if not nil) on the loop's next close
// phase. The loop's Close and Shutdown close started Signals.
func (s *Signal) Close(cb func()) {
	if s.closing {
		return
	}
	s.Stop()
	s.close(cb)
}

// signalRelay returns the loop's relay, starting one if it has none.
func (l *Loop) signalRelay() (*signalRelay, error) {
	relaysMu.Lock()
	defer relaysMu.Unlock()
	if r := relays[l]; r != nil {
		return r, nil
	}
	r := &signalRelay{
		l:    l,
		ch:   make(chan os.Signal, signalBuffer),
		swap: make(chan chan os.Signal),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	// A closed loop refuses the Async (and a loop with a relay is not
	// closed: its Close ends the relay).
	a, err := l.NewAsync(r.dispatch)
	if err != nil {
		return nil, closedError("signal start")
	}
	a.Unref() // the Signals' own refs decide whether they keep Run going
	a.SetCloseHook(r.partClosed)
	r.async = a
	relays[l] = r
	go r.run(r.ch)
	return r, nil
}

// run is the relay goroutine: it turns each arrival into a pending bit
// and a coalescing wakeup of the loop.
func (r *signalRelay) run(ch chan os.Signal) {
	defer close(r.done)
	for {
		select {
		case sig := <-ch:
			r.note(sig)
		case ch = <-r.swap:
		case <-r.quit:
			return
		}
	}
}

func (r *signalRelay) note(sig os.Signal) {
	if n, ok := sig.(syscall.Signal); ok && n >= 1 && n <= maxSignal {
		r.pending.Or(1 << (n - 1))
		_ = r.async.Send() // fails only once the relay is closing
	}
}

// register makes the os/signal registration match the union of the
// handles' sets. Additions go onto the channel in place. A removal needs
// a fresh channel (signal.Stop drops every signal of a channel): the new
// one is registered before the old one is stopped, so a signal still
// watched never falls back to its default action in between, and what
// the old one still held is noted here.
func (r *signalRelay) register() {
	var union uint64
	for _, h := range r.handles {
		union |= h.sigs
	}
	if union == r.watched {
		return
	}
	if union&r.watched == r.watched {
		signal.Notify(r.ch, signalList(union&^r.watched)...)
		r.watched = union
		return
	}
	old, ch := r.ch, make(chan os.Signal, signalBuffer)
	signal.Notify(ch, signalList(union)...)
	r.swap <- ch
	signal.Stop(old)
	r.ch, r.watched = ch, union
	for {
		select {
		case sig := <-old:
			r.note(sig)
		default:
			return
		}
	}
}

func signalList(mask uint64) []os.Signal {
	var list []os.Signal
	for mask != 0 {
		n := bits.TrailingZeros64(mask)
		mask &^= 1 << n
		list = append(list, syscall.Signal(n+1))
	}
	return list
}

// end releases the registration, ends the goroutine and closes the
// internal Async, once no Signal of the loop is started.
func (r *signalRelay) end() {
	if r.ending {
		return
	}
	r.ending = true
	signal.Stop(r.ch)
	close(r.quit)
	<-r.done
	r.async.Close(nil)
	relaysMu.Lock()
	if relays[r.l] == r {
		delete(relays, r.l)
	}
	relaysMu.Unlock()
}

// partClosed runs when the internal Async closes. Closed from outside (by
// the loop's Close, Shutdown or a Walk), it closes the Signals it served,
// which ends the relay.
func (r *signalRelay) partClosed() {
	if r.ending {
		return
	}
	for len(r.handles) > 0 {
		r.handles[0].Close(nil)
	}
	r.end()
}

// dispatch runs on the loop: each pending signal, in number order, goes
// to every started handle watching it, in start order.
func (r *signalRelay) dispatch() {
	pending := r.pending.Swap(0)
	if pending == 0 {
		return
	}
	// Handles started or stopped by a callback take effect with the
	// next signal.
	r.scratch = append(r.scratch[:0], r.handles...)
	defer clear(r.scratch)
	for pending != 0 {
		n := bits.TrailingZeros64(pending)
		var sig os.Signal = syscall.Signal(n + 1)
		for _, h := range r.scratch {
			if h.relay != r || h.sigs&(1<<n) == 0 {
				continue // stopped by an earlier callback
			}
			r.l.callSignal(h.cb, sig)
			if r.l.panicErr != nil {
				// The run ends: what was not dispatched stays
				// pending (handles already called may see
				// this signal again: at least once).
				r.pending.Or(pending)
				_ = r.async.Send()
				return
			}
		}
		pending &^= 1 << n
	}
}

func (l *Loop) callSignal(cb func(os.Signal), sig os.Signal) {
	defer l.catch()
	cb(sig)
}
