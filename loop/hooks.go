package loop

// Hook runs a callback once per loop iteration at a fixed point: idle hooks
// first (and, while any is active, the loop does not block in poll), prepare
// hooks just before the poll, check hooks just after it.
type Hook struct {
	handle
	list *hookList
	cb   func()
	seq  uint64 // when it was last started, so a restart waits for the next pass
}

type hookList struct {
	name  string
	hooks []*Hook
	n     int
}

// NewIdle creates a stopped idle hook.
func (l *Loop) NewIdle(cb func()) *Hook { return l.newHook(&l.idle, cb) }

// NewPrepare creates a stopped prepare hook.
func (l *Loop) NewPrepare(cb func()) *Hook { return l.newHook(&l.prepare, cb) }

// NewCheck creates a stopped check hook.
func (l *Loop) NewCheck(cb func()) *Hook { return l.newHook(&l.check, cb) }

func (l *Loop) newHook(list *hookList, cb func()) *Hook {
	h := &Hook{list: list, cb: cb}
	h.init(l)
	l.track(h)
	return h
}

// Start starts the hook; hooks of one kind run in the order they were
// started. A hook started from a hook callback first runs in the next pass.
func (h *Hook) Start() error {
	if err := h.errIfClosing(h.list.name + " start"); err != nil {
		return err
	}
	if h.loop.closed() {
		return closedError(h.list.name + " start")
	}
	if h.cb == nil {
		return nilError(h.list.name + " start")
	}
	if h.active {
		return nil
	}
	h.loop.hookSeq++
	h.seq = h.loop.hookSeq
	h.list.hooks = append(h.list.hooks, h)
	h.list.n++
	h.setActive(true)
	return nil
}

// Stop stops the hook.
func (h *Hook) Stop() {
	if !h.active {
		return
	}
	hooks := h.list.hooks
	for i, x := range hooks {
		if x == h {
			copy(hooks[i:], hooks[i+1:])
			hooks[len(hooks)-1] = nil
			h.list.hooks = hooks[:len(hooks)-1]
			break
		}
	}
	h.list.n--
	h.setActive(false)
}

// Close stops the hook and runs cb (if not nil) on the loop's next close
// phase.
func (h *Hook) Close(cb func()) {
	if h.closing {
		return
	}
	h.Stop()
	h.close(cb)
}

// runHooks runs the hooks active at the start of the pass, in start order.
// The pass works on a copy, so callbacks may start and stop hooks freely.
func (l *Loop) runHooks(list *hookList) {
	if list.n == 0 {
		return
	}
	limit := l.hookSeq
	l.hookScratch = append(l.hookScratch[:0], list.hooks...)
	for i, h := range l.hookScratch {
		l.hookScratch[i] = nil
		if h.active && h.seq <= limit && l.panicErr == nil {
			l.call(h.cb)
		}
	}
}
