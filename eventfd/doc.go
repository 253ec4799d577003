// Package eventfd wraps the Linux eventfd(2) object: a 64-bit counter in the
// kernel that a write adds to and a read returns and resets (or, in semaphore
// mode, decrements by one).
//
// An eventfd is the cheapest way to make a poller wake up: it is readable
// while the counter is non-zero and writable while an add of 1 would not
// overflow it. Package async builds its coalescing wakeup on it.
//
// Read and Write allocate nothing, including on the EAGAIN path, so they can
// sit on a hot path. Errors wrap the kernel's errno: errors.Is(err,
// unix.EAGAIN) tells an empty counter (or a full one) from a real failure, and
// errors.Is(err, os.ErrClosed) a use after Close.
package eventfd
