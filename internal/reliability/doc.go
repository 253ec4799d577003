// Package reliability is eventpipe's cross-package reliability suite. It has
// no API: everything in it is tests.
//
// Each package tests its own behaviour; this suite tests the promises the
// project makes about failure, across packages and under pressure:
//
//   - Load (soak_test.go): one loop serving posts from many goroutines,
//     a thousand re-arming timers, hundreds of watched sockets and both kinds
//     of BPF ring, fed by the kernel, loses nothing and does not grow.
//     Its datagram part (soak_dgram_test.go): dgram Conns echoing on the
//     same loop; every datagram returns or the kernel counted it dropped.
//   - Descriptor exhaustion (fdlimit_test.go): at RLIMIT_NOFILE every
//     constructor fails with an error wrapping EMFILE, never panics, and
//     gives back the descriptors it had already opened.
//   - Descriptors closed behind the loop's back (closedfd_test.go), signal
//     storms (eintr_test.go), panics in every kind of callback
//     (panic_test.go), Close racing with Post and Send (closerace_test.go),
//     and Stop from another goroutine in every phase (stop_test.go): the
//     loop survives each, loses nothing and can run again.
//   - Bad input (badinput_test.go, badinput_dgram_test.go,
//     garbage_test.go): nil callbacks,
//     negative durations, bad and closed descriptors, the wrong kind of BPF
//     map, use after Close, and garbage written into the kernel's ring
//     memory give documented errors that errors.Is recognises, never a
//     panic.
//
// The soak runs for about two seconds in the normal suite; set
// EVENTPIPE_SOAK=1 (or pass -soak) to run it for EVENTPIPE_SOAK_DURATION
// (or -soak.duration, default 25s). EVENTPIPE_SOAK_PERF_PAGES and
// EVENTPIPE_SOAK_EMIT_BURST shrink its perf rings and raise its emit rate
// until the kernel drops records. Tests log their figures on lines
// containing "figures:"; RELIABILITY.md at the repository root collects
// them.
package reliability
