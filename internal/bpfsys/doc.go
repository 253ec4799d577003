// Package bpfsys holds the bpf(2) shims the other packages share: the
// union bpf_attr variants they use, map creation, info, lookup, update and
// delete, and the kernel's CPU list format. It is internal: eventpipe,
// ringbuf and the test helpers import it so that each attribute layout is
// written, and checked against the kernel's, once.
//
// Errors are *os.SyscallError values naming the call ("bpf(BPF_MAP_CREATE)",
// ...) around the kernel's errno, so errors.Is works; callers add their own
// package and operation in front. It imports only the standard library and
// golang.org/x/sys, and sits below every other package.
package bpfsys
