package ringbuf

import (
	"fmt"
	"strconv"
)

// Errors that stand for a sentinel (ErrCorrupt, ErrShortRecord,
// ErrUnknownCategory) carry their own text and unwrap to the sentinel, so
// that errors.Is finds it while the message names the package and the
// operation once, instead of repeating the sentinel's own "ringbuf:".

// sentinelError is an error with its own text that errors.Is matches
// against sentinel.
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

// corruptError is what a reader returns after resynchronising a ring; cpu
// is -1 for a BPF ring buffer, which has none.
type corruptError struct {
	cpu    int
	detail string
}

func (e *corruptError) Error() string {
	if e.cpu < 0 {
		return "ringbuf: consume: corrupt ring: " + e.detail
	}
	return "ringbuf: consume: CPU " + strconv.Itoa(e.cpu) + ": corrupt ring: " + e.detail
}

func (e *corruptError) Unwrap() error { return ErrCorrupt }

// mapTypeNames are the kernel's names of the map types (enum bpf_map_type
// in include/uapi/linux/bpf.h), indexed by number.
var mapTypeNames = [...]string{
	"BPF_MAP_TYPE_UNSPEC", "BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_ARRAY",
	"BPF_MAP_TYPE_PROG_ARRAY", "BPF_MAP_TYPE_PERF_EVENT_ARRAY",
	"BPF_MAP_TYPE_PERCPU_HASH", "BPF_MAP_TYPE_PERCPU_ARRAY",
	"BPF_MAP_TYPE_STACK_TRACE", "BPF_MAP_TYPE_CGROUP_ARRAY",
	"BPF_MAP_TYPE_LRU_HASH", "BPF_MAP_TYPE_LRU_PERCPU_HASH",
	"BPF_MAP_TYPE_LPM_TRIE", "BPF_MAP_TYPE_ARRAY_OF_MAPS",
	"BPF_MAP_TYPE_HASH_OF_MAPS", "BPF_MAP_TYPE_DEVMAP", "BPF_MAP_TYPE_SOCKMAP",
	"BPF_MAP_TYPE_CPUMAP", "BPF_MAP_TYPE_XSKMAP", "BPF_MAP_TYPE_SOCKHASH",
	"BPF_MAP_TYPE_CGROUP_STORAGE", "BPF_MAP_TYPE_REUSEPORT_SOCKARRAY",
	"BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE", "BPF_MAP_TYPE_QUEUE",
	"BPF_MAP_TYPE_STACK", "BPF_MAP_TYPE_SK_STORAGE", "BPF_MAP_TYPE_DEVMAP_HASH",
	"BPF_MAP_TYPE_STRUCT_OPS", "BPF_MAP_TYPE_RINGBUF",
	"BPF_MAP_TYPE_INODE_STORAGE", "BPF_MAP_TYPE_TASK_STORAGE",
	"BPF_MAP_TYPE_BLOOM_FILTER", "BPF_MAP_TYPE_USER_RINGBUF",
	"BPF_MAP_TYPE_CGRP_STORAGE", "BPF_MAP_TYPE_ARENA",
}

// mapTypeName names a map type, or gives its number when this package
// predates it.
func mapTypeName(typ uint32) string {
	if uint64(typ) < uint64(len(mapTypeNames)) {
		return mapTypeNames[typ]
	}
	return "map type " + strconv.FormatUint(uint64(typ), 10)
}

// onCPU says which CPU's ring a drain error came from.
func onCPU(err error, cpu int) error {
	if ce, ok := err.(*corruptError); ok {
		ce.cpu = cpu
		return ce
	}
	return fmt.Errorf("ringbuf: consume: CPU %d: %w", cpu, err)
}
