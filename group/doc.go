// Package group runs N loops together, each on its own goroutine locked to
// an OS thread: the one-loop-per-core layout of a server that spreads its
// connections over loops (SO_REUSEPORT listeners, or one acceptor handing
// sockets to loops).
//
// Run starts every loop and returns when all have returned; the first
// error one of them returns (a panic with no panic handler, say) stops the
// others and is what Run returns. A group can be Run again, as a loop can.
// Post, Stop and Len may be called from any goroutine; a loop's own
// handles belong to that loop's goroutine, as always: reach them with
// Post.
package group
