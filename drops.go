//go:build linux

package eventpipe

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// dropCounter reads the map a BPF program counts its failed ring buffer
// writes in (see CountDrops).
type dropCounter struct {
	mu      sync.Mutex
	fd      int // our duplicate, -1 when none
	percpu  bool
	value   []byte
	lastSum uint64 // kept after close, so Stats keeps reporting it
}

// CountDrops names the map in which the pipe's BPF programs count the
// records they could not write: a BPF ring buffer that is full makes
// bpf_ringbuf_output (or bpf_ringbuf_reserve) fail, and unlike a perf ring,
// which reports the loss to user space in a PERF_RECORD_LOST, it tells no
// one: user space never learns the record existed. The usual remedy is for
// the program to count the failure itself:
//
//	if (bpf_ringbuf_output(&events, &rec, sizeof(rec), 0) < 0) {
//		__u32 zero = 0;
//		__u64 *n = bpf_map_lookup_elem(&drops, &zero);
//		if (n) (*n)++;   // a per-CPU array: no atomics needed
//	}
//
// mapFD is that counter: a BPF_MAP_TYPE_PERCPU_ARRAY (or an ARRAY, whose
// program increments it with __sync_fetch_and_add) with 4-byte keys and an
// 8-byte value at key 0. Stats.RingDropped then reports the sum over CPUs,
// read with one bpf(2) call per Stats. The pipe keeps a duplicate of mapFD
// (the caller's stays the caller's); a second call replaces the first map.
func (p *Pipe) CountDrops(mapFD int) error {
	if err := p.errIfClosed("count drops"); err != nil {
		return err
	}
	fd, err := bpfsys.DupFD(mapFD)
	if err != nil {
		return fmt.Errorf("eventpipe: count drops: %w", err)
	}
	info, err := bpfsys.GetMapInfo(fd)
	if err == nil && (info.KeySize != 4 || info.ValueSize != 8 || info.MaxEntries < 1 ||
		(info.Type != unix.BPF_MAP_TYPE_PERCPU_ARRAY && info.Type != unix.BPF_MAP_TYPE_ARRAY)) {
		err = fmt.Errorf("map type %d, key %d bytes, value %d bytes is not an array of 8-byte counters: %w",
			info.Type, info.KeySize, info.ValueSize, unix.EINVAL)
	}
	n := 1
	if err == nil && info.Type == unix.BPF_MAP_TYPE_PERCPU_ARRAY {
		n, err = cpuSlots()
	}
	if err != nil {
		bpfsys.CloseFD(fd)
		return fmt.Errorf("eventpipe: count drops: %w", err)
	}
	d := &p.drops
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd >= 0 {
		bpfsys.CloseFD(d.fd)
	}
	d.fd, d.percpu, d.value = fd, info.Type == unix.BPF_MAP_TYPE_PERCPU_ARRAY, make([]byte, 8*n)
	return nil
}

// sum reads the counter; it is safe from any goroutine.
func (d *dropCounter) sum() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return d.lastSum
	}
	if err := bpfsys.Lookup(d.fd, 0, unsafe.Pointer(&d.value[0])); err != nil {
		return d.lastSum
	}
	var s uint64
	for i := 0; i+8 <= len(d.value); i += 8 {
		s += binary.NativeEndian.Uint64(d.value[i:])
	}
	d.lastSum = s
	return s
}

func (d *dropCounter) close() error {
	d.sum()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := bpfsys.CloseFD(d.fd)
	d.fd = -1
	return err
}
