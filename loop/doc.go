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
// # Overload
//
// Posted tasks, async callbacks and work completions share one queue. One
// iteration runs at most the tasks that were queued when its drain began,
// and at most the task budget of them (WithTaskBudget; by default
// DefaultTaskBudget tasks or DefaultTaskTime, whichever comes first); the
// rest wait for the next iteration, whose poll then does not block. So a flood of posts delays timers and io by at most a budget's
// worth of tasks per iteration and never starves them. WithQueueLimit bounds
// the posted tasks waiting: Post then fails with an error wrapping
// unix.EAGAIN, and PostContext waits for room (async sends and work
// completions are never refused). Stats reports the tasks waiting (Queued)
// and the time spent blocked in poll (IdleTime).
//
// # Shutdown
//
// Close and Shutdown end a loop that is not running. Both refuse new posts,
// close every handle (Walk lists them; close hooks run, close callbacks only
// where they were requested before), cancel queued work and end the context
// of running QueueWorkContext functions, wait for running work and close the
// loop's descriptors. Shutdown waits as long as its context allows, Close
// for CloseTimeout; work still running then is abandoned (its done never
// runs) and named in the error.
//
// # Goroutines
//
// A loop is owned by the goroutine that runs it. Only Post, PostContext,
// Stop, Stats, (*Async).Send, and Close and Shutdown while no run is in
// progress may be called from other goroutines. Every other method must be called from the loop's own
// callbacks, or while the loop is not running; anything else is a data race,
// which the race detector reports. To act on a loop from elsewhere, Post a
// function that does it.
//
// The loop waits in epoll_wait as a system call, holding its P (the
// runtime's right to run Go code) as any blocking system call does. With
// WithSchedulerYield (a group's loops have it) it also passes through the
// Go scheduler about once per period, just before it sleeps: the runtime
// otherwise takes a goroutine that is never rescheduled for one that runs
// too long and takes its P away at each system call, which costs a
// thread-locked loop thread hand-offs (see yield.go). With more yielding
// loops running than GOMAXPROCS, a loop yields before every sleep, so that
// a loop with events does not wait for the P a sleeping one holds.
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
