package ringbuf

import (
	"errors"
	"os"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// The constructors must check the map they keep, not the number the caller
// passed: between a check of the caller's descriptor and the dup, another
// goroutine may close that number and open something else under it. The
// tests make dupMap hand back a different map, as that race would.

func swapDup(t *testing.T, other int) {
	t.Helper()
	orig := dupMap
	dupMap = func(int) (int, error) { return bpfsys.DupFD(other) }
	t.Cleanup(func() { dupMap = orig })
}

func TestPerfReaderChecksTheMapItKeeps(t *testing.T) {
	m := newPerfArray(t)
	arr, err := bpftest.NewArray(1024, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	swapDup(t, arr.FD())
	before := leakcheck.Take()
	r, err := NewPerfReader(m.FD(), PerfOptions{})
	if r != nil {
		r.Close()
		t.Fatal("NewPerfReader accepted an array map behind a perf event array's number")
	}
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "map is BPF_MAP_TYPE_ARRAY, not BPF_MAP_TYPE_PERF_EVENT_ARRAY") {
		t.Fatalf("err = %v, want the map type check", err)
	}
	for _, cpu := range testCPUs(t) {
		if v, err := arr.LookupU32(uint32(cpu)); v != 0 || err != nil {
			t.Errorf("array slot %d = %d, %v: written by a rejected reader", cpu, v, err)
		}
	}
	before.Check(t)
}

func TestRingReaderChecksTheMapItKeeps(t *testing.T) {
	m := newRingMap(t, 1<<14)
	perf := newPerfArray(t)
	swapDup(t, perf.FD())
	before := leakcheck.Take()
	r, err := NewRingReader(m.FD())
	if r != nil {
		r.Close()
		t.Fatal("NewRingReader accepted a perf event array behind a ring buffer's number")
	}
	if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "map is BPF_MAP_TYPE_PERF_EVENT_ARRAY, not BPF_MAP_TYPE_RINGBUF") {
		t.Fatalf("err = %v, want the map type check", err)
	}
	before.Check(t)
}

// Overwrite mode (BPF_F_RB_OVERWRITE, Linux 6.19) lets producers overwrite
// records the consumer has not read, with a consumer protocol this reader
// does not speak.
func TestRingFlagsRefuseOverwrite(t *testing.T) {
	if err := checkRingFlags(0); err != nil {
		t.Errorf("no flags: %v", err)
	}
	if err := checkRingFlags(unix.BPF_F_NUMA_NODE); err != nil {
		t.Errorf("BPF_F_NUMA_NODE: %v", err)
	}
	for _, flags := range []uint32{bpfFRBOverwrite, bpfFRBOverwrite | unix.BPF_F_NUMA_NODE} {
		if err := checkRingFlags(flags); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("flags %#x: %v, want EOPNOTSUPP", flags, err)
		}
	}
}

// TestRingReaderRefusesOverwriteMap: no overwrite map is ever read. A
// kernel without the mode (before 6.19) refuses to create one; a kernel with
// it makes NewRingReader run the check on a real map.
func TestRingReaderRefusesOverwriteMap(t *testing.T) {
	bpftest.Require(t)
	fd, err := createRingMap(os.Getpagesize(), bpfFRBOverwrite)
	if errors.Is(err, unix.EINVAL) {
		t.Logf("this kernel has no ring buffer overwrite mode (%v); TestRingFlagsRefuseOverwrite covers the check", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	before := leakcheck.Take()
	if r, err := NewRingReader(fd); r != nil || !errors.Is(err, unix.EOPNOTSUPP) {
		if r != nil {
			r.Close()
		}
		t.Fatalf("NewRingReader on an overwrite map: %v", err)
	}
	before.Check(t)
}

// createRingMap creates a BPF_MAP_TYPE_RINGBUF with map flags, which bpftest
// does not offer.
func createRingMap(size int, flags uint32) (int, error) {
	return createMap(unix.BPF_MAP_TYPE_RINGBUF, 0, 0, uint32(size), flags)
}

// createMap creates a map of any type with map flags.
func createMap(typ, keySize, valueSize, maxEntries, flags uint32) (int, error) {
	return bpfsys.CreateMap(typ, keySize, valueSize, maxEntries, flags, "")
}

// TestReadersRefuseDescriptorsPast32Bits: the kernel reads a descriptor
// argument as a 32-bit int, so 1<<32+fd and -(1<<32)+fd name fd itself. A
// reader given such a number must refuse it with EBADF, not read the map
// behind its low 32 bits.
func TestReadersRefuseDescriptorsPast32Bits(t *testing.T) {
	ring := newRingMap(t, 1<<14)
	perf := newPerfArray(t)
	before := leakcheck.Take()
	for _, alias := range []int{1 << 32, -(1 << 32), 1 << 62} {
		if r, err := NewRingReader(alias + ring.FD()); r != nil || !errors.Is(err, unix.EBADF) {
			if r != nil {
				r.Close()
			}
			t.Errorf("NewRingReader(%d) = %v, want EBADF", alias+ring.FD(), err)
		}
		if r, err := NewPerfReader(alias+perf.FD(), PerfOptions{}); r != nil || !errors.Is(err, unix.EBADF) {
			if r != nil {
				r.Close()
			}
			t.Errorf("NewPerfReader(%d) = %v, want EBADF", alias+perf.FD(), err)
		}
	}
	for _, cpu := range testCPUs(t) {
		if _, err := perf.LookupU32(uint32(cpu)); !errors.Is(err, unix.ENOENT) {
			t.Errorf("slot %d filled by a refused reader: %v", cpu, err)
		}
	}
	before.Check(t)
}

// TestReadersRefuseProgramDescriptor: BPF_OBJ_GET_INFO_BY_FD answers for a
// program too, with a bpf_prog_info whose first word is the program type;
// read as map info it would pass for a map of that number's type. The
// readers must say it is not a map.
func TestReadersRefuseProgramDescriptor(t *testing.T) {
	bpftest.Require(t)
	prog, err := loadTrivialProgram()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(prog)
	if r, err := NewRingReader(prog); r != nil || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "is not a BPF map") {
		if r != nil {
			r.Close()
		}
		t.Errorf("NewRingReader(program) = %v", err)
	}
	if r, err := NewPerfReader(prog, PerfOptions{}); r != nil || !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "is not a BPF map") {
		if r != nil {
			r.Close()
		}
		t.Errorf("NewPerfReader(program) = %v", err)
	}
}

// loadTrivialProgram loads "r0 = 0; exit" as a socket filter.
func loadTrivialProgram() (int, error) {
	insns := [2]uint64{0xb7, 0x95} // BPF_ALU64|BPF_MOV|BPF_K r0 = 0; BPF_JMP|BPF_EXIT
	license := []byte("GPL\x00")
	// Pointer fields stay unsafe.Pointer, so the collector and stack
	// copying see them while the call runs.
	attr := struct {
		progType, insnCnt uint32
		insns             unsafe.Pointer
		_                 bpfsys.PtrPad
		license           unsafe.Pointer // last: a trailing ptrPad would add unspecified padding
	}{progType: unix.BPF_PROG_TYPE_SOCKET_FILTER, insnCnt: 2, insns: unsafe.Pointer(&insns[0]), license: unsafe.Pointer(&license[0])}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, os.NewSyscallError("bpf(BPF_PROG_LOAD)", errno)
	}
	return int(fd), nil
}
