// Package stream runs TCP and Unix stream sockets on a loop: listeners
// (Listen), outgoing connections (Dial, with host names resolved off the
// loop) and adopted sockets (Open), with libuv's uv_stream_t contract for
// reading and writing. It is built on the loop's public API only (Watch,
// timers, Post, QueueWork, SetCloseHook), as user code would be.
//
// # Threads
//
// Listeners and connections belong to their loop: call their methods from
// the loop's callbacks (or while it is not running). Only Conn.AsyncWrite
// and Listener.Stats may be called from any goroutine, and a
// GroupListener's Addr, Close and Stats (ListenGroup spreads a listener's
// connections over the loops of a group). Callbacks (onConn,
// onConnect, OnData, OnEnd, OnDrain, OnClose, done) run on the loop, never
// inside the call that caused them.
//
// # Reading
//
// OnData starts reading. At most 32 reads are made per readiness event (as
// libuv does), so one busy connection cannot starve the others. Input goes
// into a buffer the loop's connections share; only a connection that left
// input unconsumed keeps a buffer of its own, until it is consumed, so idle
// connections hold no read memory. A delivery allocates nothing.
//
// # Writing
//
// Write sends at once when the write queue is empty and copies what the
// kernel did not take; Writev and AsyncWrite queue the caller's buffers
// without a copy. The queue is flushed with sendmsg, many requests per
// call. Buffered, Writable (false above WithHighWater) and OnDrain let a
// producer follow the queue; WithMaxQueued bounds it (ENOBUFS). Every send
// uses MSG_NOSIGNAL: a write to a closed peer is EPIPE or ECONNRESET,
// never a SIGPIPE.
//
// # Ending
//
// OnClose runs exactly once per connection. A peer's end of stream calls
// OnEnd, or, without one, closes the connection once its queue is flushed.
// Shutdown sends a FIN after the queue; Close drops the queue; CloseReset
// sends an RST. The connection's watcher and idle timer carry close hooks
// (loop's SetCloseHook): when the loop closes them (Walk, Shutdown, its
// Close), the connection ends as if closed, its descriptor closed and
// OnClose called with an error wrapping os.ErrClosed. Listeners likewise.
//
// # Idle timeout
//
// SetIdleTimeout costs no timer re-arm per read or write: progress stores
// the loop's cached time, and a per-connection timer, when it fires, either
// closes the connection (os.ErrDeadlineExceeded) or re-arms for the time
// left.
//
// # Errors
//
// Errors name the package and operation once ("stream: write: ...",
// "stream: listen tcp 127.0.0.1:0: bind: address already in use") and wrap
// the errno, so errors.Is(err, unix.ECONNREFUSED) works. Use after close is
// an error wrapping os.ErrClosed; bad arguments wrap unix.EINVAL.
package stream
