package loop

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

// Watcher calls back when a descriptor is ready. The loop never reads,
// writes or closes the descriptor: it belongs to the caller.
type Watcher struct {
	handle
	fd     int
	events poller.Events
	cb     func(poller.Events)
	token  uint64 // generation<<32 | slot while active, 0 otherwise
}

// Watch starts watching fd for ev and calls cb with the conditions that hold
// each time it is ready (level-triggered unless ev has EdgeTriggered). ev
// must ask for at least one condition (Readable, Writable, Priority,
// ReadHangup, Error or Hangup) and hold no bit poller does not define, or
// the call is EINVAL. A second active watcher on the same fd is EEXIST; a
// descriptor epoll cannot watch, such as a regular file, is EPERM; a bad
// one, or a number outside 0..math.MaxInt32 (the kernel would take its low
// 32 bits and watch some other descriptor), EBADF.
//
// Once a watcher is stopped or closed, events for it that the current
// iteration already collected are dropped, even if the descriptor is closed
// and its number reused by a new watcher in the same iteration.
//
// Stop or Close the watcher before closing the descriptor, as with libuv.
// epoll registers the open file, not the number: a descriptor closed while
// watched, with a duplicate of it still open elsewhere (dup, fork,
// SCM_RIGHTS), leaves a registration nobody can name any more, and while
// that file is ready the loop polls without sleeping (dropping the stale
// events) until the duplicate is closed too.
func (l *Loop) Watch(fd int, ev poller.Events, cb func(poller.Events)) (*Watcher, error) {
	if l.closed() {
		return nil, closedError(fdOp("watch", fd))
	}
	if cb == nil {
		return nil, nilError(fdOp("watch", fd))
	}
	if fd < 0 || fd > math.MaxInt32 {
		return nil, opError("loop: "+fdOp("watch", fd)+": not a descriptor number", unix.EBADF)
	}
	if err := checkEvents("watch", fd, ev); err != nil {
		return nil, err
	}
	w := &Watcher{fd: fd, events: ev, cb: cb}
	if err := w.register(l, "watch"); err != nil {
		return nil, err
	}
	w.init(l)
	l.track(w)
	w.setActive(true)
	return w, nil
}

// fdOp names operation name on descriptor fd, for an error's text: made
// only when there is an error, so the calls allocate nothing otherwise.
func fdOp(name string, fd int) string { return fmt.Sprintf("%s fd %d", name, fd) }

// register takes a token slot and adds the descriptor to the poller.
func (w *Watcher) register(l *Loop, op string) error {
	if other, ok := l.byFd[w.fd]; ok && other != w {
		return opError("loop: "+fdOp(op, w.fd)+": already watched", unix.EEXIST)
	}
	var slot uint32
	if n := len(l.freeSlots); n > 0 {
		slot = l.freeSlots[n-1]
		l.freeSlots = l.freeSlots[:n-1]
	} else {
		slot = uint32(len(l.slots))
		l.slots = append(l.slots, nil)
		l.slotGen = append(l.slotGen, 0)
	}
	l.slotGen[slot]++
	token := uint64(l.slotGen[slot])<<32 | uint64(slot)
	if err := l.poller.Add(w.fd, w.events, token); err != nil {
		l.freeSlots = append(l.freeSlots, slot)
		return lowerError(fdOp(op, w.fd), err)
	}
	w.token = token
	l.slots[slot] = w
	l.byFd[w.fd] = w
	return nil
}

// Fd returns the watched descriptor.
func (w *Watcher) Fd() int { return w.fd }

// Events returns the conditions the watcher asks for.
func (w *Watcher) Events() poller.Events { return w.events }

// Modify changes the conditions watched. On a stopped watcher it only
// records them for the next Start. It re-arms a OneShot watcher. ev is
// checked as by Watch (EINVAL).
func (w *Watcher) Modify(ev poller.Events) error {
	if w.closing {
		return closedError(fdOp("watcher modify", w.fd))
	}
	if err := checkEvents("watcher modify", w.fd, ev); err != nil {
		return err
	}
	if w.active {
		if err := w.loop.poller.Modify(w.fd, ev, w.token); err != nil {
			return lowerError(fdOp("watcher modify", w.fd), err)
		}
	}
	w.events = ev
	return nil
}

// Start resumes a stopped watcher with its last events. Starting an active
// watcher does nothing.
func (w *Watcher) Start() error {
	if w.closing {
		return closedError(fdOp("watcher start", w.fd))
	}
	if w.active {
		return nil
	}
	if w.loop.closed() {
		return closedError(fdOp("watcher start", w.fd))
	}
	if err := w.register(w.loop, "watcher start"); err != nil {
		return err
	}
	w.setActive(true)
	return nil
}

// Stop stops watching. The descriptor stays open.
func (w *Watcher) Stop() {
	if !w.active {
		return
	}
	l := w.loop
	// ENOENT or EBADF mean the descriptor was closed behind the loop's
	// back, which already removed it from epoll: nothing left to undo.
	_ = l.poller.Delete(w.fd)
	slot := uint32(w.token)
	l.slots[slot] = nil
	l.freeSlots = append(l.freeSlots, slot)
	if l.byFd[w.fd] == w {
		delete(l.byFd, w.fd)
	}
	w.token = 0
	w.setActive(false)
}

// Close stops the watcher and runs cb (if not nil) on the loop's next close
// phase. The descriptor stays open.
func (w *Watcher) Close(cb func()) {
	if w.closing {
		return
	}
	w.Stop()
	w.close(cb)
}
