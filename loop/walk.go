package loop

import "slices"

// Handle is what every loop handle (Timer, Watcher, Hook, Async, and the
// handles other packages build on them) has in common, as libuv's
// uv_handle_t: Walk hands them out as Handles.
type Handle interface {
	// Close stops the handle and runs cb (if not nil) on the loop's next
	// close phase.
	Close(cb func())
	// IsActive reports whether the handle is started.
	IsActive() bool
	// IsClosing reports whether Close was called on the handle.
	IsClosing() bool
	// Ref makes an active handle keep the loop alive (the default).
	Ref()
	// Unref stops an active handle from keeping the loop alive.
	Unref()
	// HasRef reports whether the handle is referenced.
	HasRef() bool
}

// registered is a Handle the loop keeps in its registry; every handle type
// gets base by embedding handle.
type registered interface {
	Handle
	base() *handle
}

func (h *handle) base() *handle { return h }

// track puts a new handle in the loop's registry, where it stays until it is
// closed: Walk, Shutdown and Close find every handle there, started or
// stopped. A handle type's constructor calls it once, after init. O(1).
func (l *Loop) track(r registered) {
	h := r.base()
	if h.reg != 0 {
		return
	}
	l.handles = append(l.handles, r)
	h.reg = int32(len(l.handles))
}

// untrack removes a handle from the registry, in O(1): the last entry takes
// its place.
func (l *Loop) untrack(h *handle) {
	if h.reg == 0 {
		return
	}
	i, last := int(h.reg-1), len(l.handles)-1
	moved := l.handles[last]
	l.handles[i] = moved
	moved.base().reg = int32(i + 1)
	l.handles[last] = nil
	l.handles = l.handles[:last]
	h.reg = 0
}

// Walk calls fn for every handle of the loop that is not yet closed, started
// or stopped, and closing ones too (check IsClosing), once each, as
// uv_walk: to close everything, to count what keeps the loop alive, to
// debug. The handles are the ones there when Walk began, in no particular
// order; handles made by fn are not visited, and a handle fn closes is
// still visited if its turn had not come (it is closing, not closed: its
// close phase comes later). fn runs on the calling goroutine, inside Walk.
//
// One kind of handle is treated apart: a timer made by AfterFunc is walked
// only while it is active (due, not yet fired). Once it has fired, been
// stopped or been closed, the loop keeps no reference to it, so a fired
// AfterFunc timer the caller dropped is garbage, as a fired time.AfterFunc
// timer is; a caller that keeps it and starts it again makes it walkable
// again. A timer made by NewTimer, like every other
// handle, is the loop's until closed: the loop holds it (and Walk sees it)
// until Close is called on it or on the loop, whether or not it runs.
//
// A nil fn visits nothing. Walk belongs to the loop's goroutine.
func (l *Loop) Walk(fn func(h Handle)) {
	if fn == nil {
		return
	}
	// A snapshot: fn may close handles and make new ones. AfterFunc timers
	// are not in the registry (it would cost each of them an entry, and
	// each fire a removal): the active ones are in the heap, or in the
	// list of the pass in progress when Walk runs from a timer callback.
	hs := slices.Clone(l.handles)
	for _, e := range l.timers {
		if e.t.ephemeral {
			hs = append(hs, e.t)
		}
	}
	for _, e := range l.ready {
		if e.t != nil && e.t.ephemeral && e.t.ready {
			hs = append(hs, e.t)
		}
	}
	for i, r := range hs {
		hs[i] = nil
		if !r.base().closed {
			fn(r)
		}
	}
}

// closeEvery closes every handle not already closing, with no close
// callback, for Shutdown and Close. It reports how many it closed.
func (l *Loop) closeEvery() int {
	n := 0
	l.Walk(func(h Handle) {
		if !h.IsClosing() {
			h.Close(nil)
			n++
		}
	})
	return n
}
