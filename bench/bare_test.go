package bench

import (
	"encoding/binary"
	"os"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// The Go floor of the ring drains (impl=bare): the same rings read by the
// shortest loop Go allows, written here without a library, with the
// checker called directly and only the checks a reader cannot skip (sizes
// against what was published; a wrapped perf record copied). It has one
// ring (emitCPU's) where the readers drain every CPU's, no guard, no
// counters and no handler indirection: what is left between it and libbpf
// is Go, not the readers.

func benchBarePerf(b *testing.B, size int) {
	m, rb := perfSetup(b, size)
	fd, err := bpftest.OpenPerfEvent(emitCPU)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	page := os.Getpagesize()
	mem, err := unix.Mmap(fd, 0, (1+ringPages)*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := m.UpdateU32(emitCPU, uint32(fd)); err != nil {
		b.Fatal(err)
	}
	head := (*uint64)(unsafe.Pointer(&mem[1024])) // data_head in struct perf_event_mmap_page
	tailp := (*uint64)(unsafe.Pointer(&mem[1032]))
	data := mem[page:]
	mask := uint64(len(data) - 1)
	scratch := make([]byte, 1<<16)
	c := &checker{size: bpftest.PerfRawSize(size)}

	rb.run(func(k int) {
		h := atomic.LoadUint64(head)
		t := atomic.LoadUint64(tailp)
		for t != h {
			off := t & mask
			typ := binary.NativeEndian.Uint32(data[off:])
			n := uint64(binary.NativeEndian.Uint16(data[off+6:]))
			if n < 8 || n > h-t {
				b.Fatalf("perf record of %d bytes", n)
			}
			rec := data[off:min(off+n, uint64(len(data)))]
			if uint64(len(rec)) < n {
				w := copy(scratch, rec)
				copy(scratch[w:n], data)
				rec = scratch[:n]
			}
			if typ == 9 { // PERF_RECORD_SAMPLE
				raw := uint64(binary.NativeEndian.Uint32(rec[8:]))
				if raw > n-12 {
					b.Fatalf("raw size %d in a %d-byte record", raw, n)
				}
				c.check(emitCPU, rec[12:12+raw])
			}
			t += n
		}
		atomic.StoreUint64(tailp, t)
	})

	c.verify(b, b.N)
}

func benchBareRing(b *testing.B, size int) {
	m, rb := ringSetup(b, size)
	page := os.Getpagesize()
	ringBytes := ringPages * page
	cons, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(cons)
	prod, err := unix.Mmap(m.FD(), int64(page), page+2*ringBytes, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(prod)
	consPos := (*uint64)(unsafe.Pointer(&cons[0]))
	prodPos := (*uint64)(unsafe.Pointer(&prod[0]))
	data := prod[page:]
	mask := uint64(ringBytes - 1)
	c := &checker{size: size}

	rb.run(func(k int) {
		p := atomic.LoadUint64(prodPos)
		q := atomic.LoadUint64(consPos)
		for q != p {
			off := q & mask
			hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&data[off])))
			if hdr&(1<<31) != 0 {
				break // reserved, not committed
			}
			n := uint64(hdr &^ (3 << 30))
			total := (n + 8 + 7) &^ 7
			if total > p-q {
				b.Fatalf("ring record of %d bytes", n)
			}
			if hdr&(1<<30) == 0 {
				c.check(emitCPU, data[off+8:off+8+n])
			}
			q += total
		}
		atomic.StoreUint64(consPos, q)
	})

	c.verify(b, b.N)
}
