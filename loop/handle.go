package loop

import (
	"fmt"
	"os"
)

// handle is the life cycle every handle type shares: active, referenced,
// closing. The loop counts handles that are both active and referenced; that
// count is what keeps Run going.
type handle struct {
	loop    *Loop
	active  bool
	unref   bool
	closing bool
	closed  bool
	closeCb func()

	// The registry links the active handles, so Loop.Close can close them.
	// An inactive handle is not linked: once the caller drops it (a fired
	// AfterFunc timer, say), nothing of the loop's keeps it reachable.
	prev, next *handle
	owner      stopper // the concrete handle, stopped by close
}

// stopper is implemented by each handle type; an interface holding the
// pointer costs no allocation, unlike a stored method value.
type stopper interface{ stopHandle() }

func (h *handle) init(l *Loop, owner stopper) {
	h.loop = l
	h.owner = owner
}

func (h *handle) counts() bool { return h.active && !h.unref }

func (h *handle) setActive(on bool) {
	if h.active == on {
		return
	}
	before := h.counts()
	h.active = on
	if on {
		h.loop.handles.push(h)
	} else {
		h.loop.handles.remove(h)
	}
	h.loop.adjust(before, h.counts())
}

// IsActive reports whether the handle is started (for an Async: not closed).
func (h *handle) IsActive() bool { return h.active }

// IsClosing reports whether Close was called on the handle.
func (h *handle) IsClosing() bool { return h.closing }

// Ref makes an active handle keep the loop alive again. Refs do not stack.
func (h *handle) Ref() {
	before := h.counts()
	h.unref = false
	h.loop.adjust(before, h.counts())
}

// Unref stops the handle from keeping the loop alive; it still works while
// the loop runs for other reasons.
func (h *handle) Unref() {
	before := h.counts()
	h.unref = true
	h.loop.adjust(before, h.counts())
}

// HasRef reports whether the handle is referenced.
func (h *handle) HasRef() bool { return !h.unref }

// close stops the handle and queues its close callback for the loop's close
// phase. A second close is ignored, as in libuv (it is a programming error
// there, and an os.ErrClosed-reporting no-op here).
func (h *handle) close(cb func()) {
	if h.closing {
		return
	}
	h.owner.stopHandle()
	h.closing = true
	h.closeCb = cb
	h.loop.closing = append(h.loop.closing, h)
}

func (h *handle) errIfClosing(what string) error {
	if h.closing {
		return fmt.Errorf("loop: %s: %w", what, os.ErrClosed)
	}
	return nil
}

// handleList is an intrusive doubly linked list of active handles.
type handleList struct {
	head handle // sentinel
	n    int
}

func (hl *handleList) push(h *handle) {
	if hl.head.next == nil {
		hl.head.next, hl.head.prev = &hl.head, &hl.head
	}
	h.prev, h.next = hl.head.prev, &hl.head
	hl.head.prev.next = h
	hl.head.prev = h
	hl.n++
}

func (hl *handleList) remove(h *handle) {
	if h.next == nil {
		return
	}
	h.prev.next, h.next.prev = h.next, h.prev
	h.prev, h.next = nil, nil
	hl.n--
}

// first returns the handle activated longest ago, or nil.
func (hl *handleList) first() *handle {
	if hl.n == 0 {
		return nil
	}
	return hl.head.next
}
