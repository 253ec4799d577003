package ringbuf

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) {
	bpftest.SkipExamplesWithout("ExampleNewPerfReader", "ExampleNewRingReader")
	leakcheck.Main(m)
}

// mapping is one line of /proc/self/maps.
type mapping struct {
	start, end uintptr
	perms      string
	offset     uint64
	name       string
}

func (m mapping) size() int { return int(m.end - m.start) }

// kernelMappings returns the mappings of the kernel object named name
// ("anon_inode:[perf_event]", "anon_inode:bpf-map").
func kernelMappings(t testing.TB, name string) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != name {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		off, _ := strconv.ParseUint(fields[2], 16, 64)
		out = append(out, mapping{start: uintptr(start), end: uintptr(end), perms: fields[1], offset: off, name: fields[5]})
	}
	return out
}

// mappingOf finds the mapping that holds b.
func mappingOf(t testing.TB, name string, b []byte) (mapping, bool) {
	t.Helper()
	p := uintptr(unsafe.Pointer(&b[0]))
	for _, m := range kernelMappings(t, name) {
		if p >= m.start && p < m.end {
			return m, true
		}
	}
	return mapping{}, false
}

// pinCPU moves the calling goroutine, for the rest of its life, to an OS
// thread that only runs on cpu. The thread is not unlocked, so the runtime
// discards it when the test's goroutine ends instead of reusing a pinned
// thread.
func pinCPU(t testing.TB, cpu int) {
	t.Helper()
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatalf("pin to CPU %d: %v", cpu, err)
	}
}

// testCPUs returns the online CPUs, the set a PerfReader opens by default.
func testCPUs(t testing.TB) []int {
	t.Helper()
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	return cpus
}

func newPerfArray(t testing.TB) *bpftest.Map {
	t.Helper()
	bpftest.Require(t)
	m, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newRingMap(t testing.TB, size int) *bpftest.Map {
	t.Helper()
	bpftest.Require(t)
	m, err := bpftest.NewRingBuf(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newProducer(t testing.TB, p *bpftest.Producer, err error) *bpftest.Producer {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// record builds an emit payload: cpu and sequence number up front, then a
// pattern derived from both so a torn or shifted record shows.
func record(buf []byte, cpu, seq int) []byte {
	putU32(buf[0:], uint32(cpu))
	putU32(buf[4:], uint32(seq))
	for i := 8; i < len(buf); i++ {
		buf[i] = byte(seq + i*3 + cpu)
	}
	return buf
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func getU32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// closedFD returns a descriptor number that was open and is not any more,
// chosen high so the test's own descriptors do not reuse it.
func closedFD(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 900)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(high)
	return high
}

// nonMapFD returns an open descriptor that is not a BPF map.
func nonMapFD(t testing.TB) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// unsafePointer returns the address of b's first byte.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
