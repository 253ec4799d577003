// Package poller is a thin, allocation-free wrapper over Linux epoll.
//
// A Poller is an epoll instance: an interest set of descriptors, each
// registered with the events it wants and a caller-chosen 64-bit token, and a
// Wait that fills a caller-owned slice with the tokens that became ready. The
// token is an opaque number, never a pointer: the garbage collector cannot see
// inside the kernel's copy of it, and a number can carry a generation so that a
// stale event for a descriptor that was removed (and whose number may already
// be reused) is recognised and dropped by the caller.
//
// Errors wrap the kernel's errno, so errors.Is(err, unix.EEXIST) identifies a
// duplicate Add and errors.Is(err, unix.ENOENT) a Modify or Delete of a
// descriptor that is not registered. A regular file cannot be polled; Add
// reports EPERM for it. A descriptor number outside 0..math.MaxInt32 is
// EBADF: the kernel reads the argument as a 32-bit int, and would otherwise
// take 1<<32+fd for fd.
package poller
