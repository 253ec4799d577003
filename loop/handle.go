package loop

// handle is the life cycle every handle type shares: active, referenced,
// closing. The loop counts handles that are both active and referenced; that
// count is what keeps Run going.
//
// The loop reaches an active handle through the structure that serves it
// (the timer heap, a hook list, a watcher slot, the Async set), and every
// handle not yet closed, started or stopped, through its registry (see
// track), except timers made by AfterFunc, which it knows only while they
// are active, through the timer heap. Kept small, because a program may hold a million timers.
type handle struct {
	loop    *Loop
	closeCb func()
	active  bool
	unref   bool
	closing bool
	closed  bool
	reg     int32 // 1 + index in the loop's registry; 0: not in it
}

func (h *handle) init(l *Loop) { h.loop = l }

func (h *handle) counts() bool { return h.active && !h.unref }

func (h *handle) setActive(on bool) {
	if h.active == on {
		return
	}
	before := h.counts()
	h.active = on
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

// close queues the close callback of a handle its owner has just stopped,
// for the loop's close phase. After the loop's Close has finished there is no
// close phase any more: the handle is closed at once and cb never runs.
func (h *handle) close(cb func()) {
	h.closing = true
	if h.loop.shutDown {
		h.closed = true
		h.loop.untrack(h)
		h.runCloseHook() // no close phase will come: now is the last chance
		return
	}
	h.closeCb = cb
	h.loop.closing = append(h.loop.closing, h)
}

// SetCloseHook sets fn to run on the loop once the handle is closed, by
// whoever closes it: its owner, a function given to Walk, Shutdown or the
// loop's Close. It runs in the close phase just before the close callback,
// and also where Shutdown and Close run no close callback. A nil fn removes
// the hook; setting one replaces the previous one.
//
// It exists for objects built from several handles (a stream connection, an
// EventPipe): set on their parts, it lets a part closed from outside end the
// whole object as the object's own Close would. When the owner closed the
// part itself, the hook runs all the same and should do nothing.
//
// If the loop has already been closed, the handle closes at once and fn runs
// inside the call that closed it: there is no close phase left to run it in.
func (h *handle) SetCloseHook(fn func()) {
	l := h.loop
	if fn == nil {
		delete(l.closeHooks, h)
		return
	}
	if l.closeHooks == nil {
		l.closeHooks = make(map[*handle]func())
	}
	l.closeHooks[h] = fn
}

// runCloseHook runs and forgets the handle's close hook, if it has one.
func (h *handle) runCloseHook() {
	l := h.loop
	if len(l.closeHooks) == 0 {
		return
	}
	fn, ok := l.closeHooks[h]
	if !ok {
		return
	}
	delete(l.closeHooks, h)
	l.call(fn)
}

func (h *handle) errIfClosing(what string) error {
	if h.closing {
		return closedError(what)
	}
	return nil
}
