package bpftest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Map is a BPF map owned by the test. The kernel keeps a map alive while a
// program that uses it is loaded, so closing a Map before the Producer that
// writes into it is safe.
type Map struct {
	mu        sync.Mutex
	fd        int // -1 once closed
	typ       uint32
	valueSize uint32
}

func newMap(typ, keySize, valueSize uint32, maxEntries int, name string) (*Map, error) {
	if maxEntries <= 0 || uint64(maxEntries) > 1<<32-1 {
		return nil, fmt.Errorf("bpftest: %s: max entries %d out of range: %w", name, maxEntries, unix.EINVAL)
	}
	fd, err := mapCreate(typ, keySize, valueSize, uint32(maxEntries), name)
	if err != nil {
		return nil, err
	}
	return &Map{fd: fd, typ: typ, valueSize: valueSize}, nil
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

// elem runs a BPF_MAP_*_ELEM command on a 4-byte key and a 4-byte value.
func (m *Map) elem(what string, cmd uintptr, key uint32, value *uint32, flags uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fd < 0 {
		return fmt.Errorf("bpftest: %s: %w", what, os.ErrClosed)
	}
	if value != nil && m.valueSize != 4 {
		return fmt.Errorf("bpftest: %s: map values are %d bytes, not 4: %w", what, m.valueSize, unix.EINVAL)
	}
	if err := mapElem(cmd, m.fd, unsafe.Pointer(&key), unsafe.Pointer(value), flags); err != nil {
		return fmt.Errorf("bpftest: %s key %d: %w", what, key, err)
	}
	return nil
}

// LookupU32 reads the 4-byte value at key. An empty perf event array slot
// reads as ENOENT (wrapped), which is how a test tells that a reader's Close
// removed the perf event fds it stored. For a perf event array the value read
// back is not the fd that was stored: the kernel holds the perf event, not
// the descriptor.
func (m *Map) LookupU32(key uint32) (uint32, error) {
	var v uint32
	err := m.elem("lookup", unix.BPF_MAP_LOOKUP_ELEM, key, &v, 0)
	return v, err
}

// UpdateU32 stores value at key (BPF_ANY). For a perf event array value is a
// perf event fd opened on the CPU that key stands for.
func (m *Map) UpdateU32(key, value uint32) error {
	return m.elem("update", unix.BPF_MAP_UPDATE_ELEM, key, &value, unix.BPF_ANY)
}

// Delete empties the slot at key; ENOENT (wrapped) when it was empty already.
func (m *Map) Delete(key uint32) error {
	return m.elem("delete", unix.BPF_MAP_DELETE_ELEM, key, nil, 0)
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
	highest := -1
	for _, part := range strings.Split(s, ",") {
		last := part
		if i := strings.IndexByte(part, '-'); i >= 0 {
			last = part[i+1:]
		}
		n, err := strconv.Atoi(last)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bpftest: bad CPU list %q: %w", s, unix.EINVAL)
		}
		highest = max(highest, n)
	}
	return highest + 1, nil
}
