// Package async is a cross-goroutine task queue with a coalescing wakeup, the
// protocol of libuv's uv_async_t: any goroutine may Post, one consumer Drains,
// and the consumer learns that there is work by polling one eventfd.
//
// The wakeup coalesces: however many tasks are posted while the consumer is
// busy, at most one eventfd write is made per drain cycle. A producer only
// writes when it is the one that flips the pending flag from clear to set; the
// consumer clears the flag after consuming the eventfd and before it looks for
// work, so a task posted at any moment is either in the run it finds or will
// cause a fresh write.
//
// Producers share no lock: the tasks live in a linked list of fixed-size
// segments, a producer claims a slot with one atomic add, and drained segments
// are reused, so posting and draining allocate nothing in steady state.
//
// A drain runs only the tasks accepted when it began, and DrainEdgeN at most
// a budget of them, so a consumer that drains between other duties (a loop
// with timers and io) is never held by producers. SetLimit bounds the tasks
// posted with PostLimited (EAGAIN past it) and PostContext (which waits for
// room, woken by the consumer, never polling); Post, for what a consumer
// owes itself, is never refused nor counted. Seal refuses limited posts from
// then on, for a consumer that is shutting down.
//
// Tasks run in the order they were accepted (FIFO, and so FIFO per producer).
// Close refuses further posts with os.ErrClosed but keeps what it already
// accepted: those tasks still run on the next Drain. Nothing accepted is lost,
// not even when a task panics: the rest of its batch stays queued.
package async
