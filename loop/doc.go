// Package loop is an event loop in the style of libuv: one goroutine runs
// timers, io watchers, idle/prepare/check hooks, async handles and posted
// tasks, all multiplexed on one epoll instance, with a worker pool for
// blocking work whose completions come back to the loop.
//
// # Iteration
//
// An iteration is libuv's (1.45 and later): idle hooks, prepare hooks, poll
// for io (blocking until the nearest timer is due, or not at all when idle
// hooks are active, a close is pending or Stop was called), check hooks, close
// callbacks, then the loop time is updated and due timers run. Run in DEFAULT
// mode also runs due timers once before the first iteration.
//
// Timers due at the same time fire in the order they were started. A timer
// started or re-armed from a timer callback never runs in the same pass, so a
// zero-timeout timer cannot starve io. Repeating timers re-arm relative to the
// loop time of the pass, so an overdue repeating timer fires once per pass,
// not once per missed period.
//
// # Handles
//
// Timers, watchers, hooks and async handles share one life cycle: active while
// started, closing after Close until their close callback has run on the loop
// (never inside Close itself), and referenced unless Unref was called. The
// loop is alive while it has a referenced active handle, pending work, queued
// tasks or a handle still closing; Run returns when it is not.
//
// # Goroutines
//
// A loop is owned by the goroutine that runs it. Only Post, Stop, Stats,
// (*Async).Send, and Close while no run is in progress may be called from
// other goroutines. Every other method must be called from the loop's own
// callbacks, or while the loop is not running; anything else is a data race,
// which the race detector reports. To act on a loop from elsewhere, Post a
// function that does it.
//
// # Panics
//
// A callback that panics does not leave the loop inconsistent. With
// WithPanicHandler the handler receives the value and the loop goes on.
// Without one, the run ends at once and returns a *PanicError holding the
// value and the stack of the panic. Nothing the run had not reached is lost:
// timers that were due stay due, tasks posted behind the panicking one stay
// queued, io events already collected are dispatched first, and pending close
// callbacks keep their order; the next run picks them up. A panic in a
// QueueWork function, which runs on a worker, becomes the error its done
// callback receives.
package loop
