package bpftest

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// Map is a BPF map owned by the test. The kernel keeps a map alive while a
// program that uses it is loaded, so closing a Map before the Producer that
// writes into it is safe.
type Map struct {
	mu         sync.Mutex
	fd         int // -1 once closed
	typ        uint32
	valueSize  uint32
	maxEntries uint32
}

func newMap(typ, keySize, valueSize uint32, maxEntries int, name string) (*Map, error) {
	if maxEntries <= 0 || uint64(maxEntries) > 1<<32-1 {
		return nil, fmt.Errorf("bpftest: %s: max entries %d out of range: %w", name, maxEntries, unix.EINVAL)
	}
	fd, err := mapCreate(typ, keySize, valueSize, uint32(maxEntries), name)
	if err != nil {
		return nil, err
	}
	return &Map{fd: fd, typ: typ, valueSize: valueSize, maxEntries: uint32(maxEntries)}, nil
}

// NewPerfEventArray creates a BPF_MAP_TYPE_PERF_EVENT_ARRAY with maxEntries
// slots; 0 means one per possible CPU, the size a perf reader keys by CPU.
func NewPerfEventArray(maxEntries int) (*Map, error) {
	if maxEntries == 0 {
		n, err := PossibleCPUs()
		if err != nil {
			return nil, err
		}
		maxEntries = n
	}
	return newMap(unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, maxEntries, "bpftest_perf")
}

// NewRingBuf creates a BPF_MAP_TYPE_RINGBUF whose data area is size bytes.
// The kernel insists on a power of two that is a multiple of the page size
// and answers EINVAL otherwise; that check is left to it so tests can provoke
// it.
func NewRingBuf(size int) (*Map, error) {
	return newMap(unix.BPF_MAP_TYPE_RINGBUF, 0, 0, size, "bpftest_ring")
}

// NewArray creates a BPF_MAP_TYPE_ARRAY with 4-byte keys: "the wrong kind of
// map" for readers that expect a perf event array or a ring buffer.
func NewArray(maxEntries int, valueSize int) (*Map, error) {
	if valueSize <= 0 || valueSize > 1<<20 {
		return nil, fmt.Errorf("bpftest: array value size %d out of range: %w", valueSize, unix.EINVAL)
	}
	return newMap(unix.BPF_MAP_TYPE_ARRAY, 4, uint32(valueSize), maxEntries, "bpftest_array")
}

// FD returns the map's descriptor, or -1 after Close.
func (m *Map) FD() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fd
}

// Close releases the map's descriptor. A second Close returns an error
// wrapping os.ErrClosed.
func (m *Map) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 {
		return fmt.Errorf("bpftest: map: %w", os.ErrClosed)
	}
	err := unix.Close(m.fd)
	m.fd = -1
	if err != nil {
		return fmt.Errorf("bpftest: close map: %w", err)
	}
	return nil
}

// LookupU32 reads the 4-byte value at key; ENOENT (wrapped) when key is out
// of range or, for a perf event array, when the slot is empty.
//
// The kernel does not read perf event array slots back to user space
// (BPF_MAP_LOOKUP_ELEM answers ENOTSUPP), so for that map type LookupU32 runs
// a throw-away tracing program that asks bpf_perf_event_read_value about the
// slot: 0 with a nil error means a perf event is stored there (the fd it came
// from is not recoverable), ENOENT means the slot is empty. That is how a test
// tells that a reader's Close took its perf events out of the array; closing
// a perf event fd alone does not, the array keeps the event alive.
func (m *Map) LookupU32(key uint32) (uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 {
		return 0, fmt.Errorf("bpftest: lookup: %w", os.ErrClosed)
	}
	if key >= m.maxEntries {
		return 0, fmt.Errorf("bpftest: lookup key %d of %d: %w", key, m.maxEntries, unix.ENOENT)
	}
	if m.typ == unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY {
		if err := probePerfSlot(m.fd, key); err != nil {
			return 0, fmt.Errorf("bpftest: lookup key %d: %w", key, err)
		}
		return 0, nil
	}
	if m.valueSize != 4 {
		return 0, fmt.Errorf("bpftest: lookup: map values are %d bytes, not 4: %w", m.valueSize, unix.EINVAL)
	}
	var v uint32
	if err := errno(bpfsys.Lookup(m.fd, key, unsafe.Pointer(&v))); err != nil {
		return 0, fmt.Errorf("bpftest: lookup key %d: %w", key, err)
	}
	return v, nil
}

// probePerfSlot returns nil when slot key of the perf event array holds a
// perf event and ENOENT when it is empty. bpf_perf_event_read_value only
// reads a counter, so unlike bpf_perf_event_output it leaves no trace in the
// event's ring. The program is loaded per call rather than kept, so a lookup
// never changes the test's descriptor count.
func probePerfSlot(mapFD int, key uint32) error {
	const valueSize = 24 // struct bpf_perf_event_value: counter, enabled, running
	a := newAsm()
	a.load(unix.BPF_DW, r2, r1, 0) // flags = the key, passed in as the context
	a.loadMapFD(r1, mapFD)
	a.movReg(r3, r10)
	a.add(r3, -valueSize)
	a.mov64(r4, valueSize)
	a.call(fnPerfEventReadValue)
	a.exit()
	insns, err := a.program()
	if err != nil {
		return err
	}
	fd, err := progLoad(unix.BPF_PROG_TYPE_RAW_TRACEPOINT, insns, license, "bpftest_probe")
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ctx [8]byte
	binary.NativeEndian.PutUint64(ctx[:], uint64(key))
	ret, err := progTestRun(fd, ctx[:])
	if err != nil {
		return err
	}
	switch errno := unix.Errno(-int32(ret)); {
	case errno == unix.ENOENT:
		return errno
	case errno == 0, errno == unix.EINVAL:
		// 0: an event on this CPU; EINVAL: perf_event_read_local refusing
		// an event bound to another CPU. Either way the slot is taken.
		return nil
	default:
		return fmt.Errorf("bpf_perf_event_read_value: %w", errno)
	}
}

// UpdateU32 stores value at key (BPF_ANY). For a perf event array value is a
// perf event fd opened on the CPU that key stands for.
func (m *Map) UpdateU32(key, value uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 {
		return fmt.Errorf("bpftest: update: %w", os.ErrClosed)
	}
	if m.valueSize != 4 {
		return fmt.Errorf("bpftest: update: map values are %d bytes, not 4: %w", m.valueSize, unix.EINVAL)
	}
	if err := errno(bpfsys.UpdateU32(m.fd, key, value)); err != nil {
		return fmt.Errorf("bpftest: update key %d: %w", key, err)
	}
	return nil
}

// Delete empties the slot at key; ENOENT (wrapped) when it was empty
// already. Arrays other than perf event arrays refuse with EINVAL.
func (m *Map) Delete(key uint32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 {
		return fmt.Errorf("bpftest: delete: %w", os.ErrClosed)
	}
	if err := errno(bpfsys.DeleteU32(m.fd, key)); err != nil {
		return fmt.Errorf("bpftest: delete key %d: %w", key, err)
	}
	return nil
}

// PossibleCPUs returns the number of possible CPUs, the key space of a perf
// event array that has one slot per CPU (CPU ids run 0..n-1).
func PossibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("bpftest: possible CPUs: %w", err)
	}
	return parseCPURange(strings.TrimSpace(string(b)))
}

// parseCPURange returns 1 + the highest CPU in a kernel CPU list such as
// "0-3" or "0,2-5".
func parseCPURange(s string) (int, error) {
	cpus, err := bpfsys.ParseCPUList(s)
	if err != nil {
		return 0, fmt.Errorf("bpftest: %w", err)
	}
	return slices.Max(cpus) + 1, nil
}
