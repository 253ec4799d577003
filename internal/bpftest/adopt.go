package bpftest

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenMap returns a Map over a duplicate of fd, a BPF map someone else
// created (a library under test that creates its own maps), so that
// producers can write into it and lookups can check it. Closing the Map
// closes the duplicate only.
func OpenMap(fd int) (*Map, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bpftest: open map %d: %w", fd, err)
	}
	var info struct {
		typ, id, keySize, valueSize, maxEntries, mapFlags uint32
	}
	attr := struct {
		fd, infoLen uint32
		info        kptr
	}{fd: uint32(dup), infoLen: uint32(unsafe.Sizeof(info)), info: kptr{p: unsafe.Pointer(&info)}}
	if _, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), 16); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("bpftest: open map %d: %w", fd, err)
	}
	return &Map{fd: dup, typ: info.typ, valueSize: info.valueSize, maxEntries: info.maxEntries}, nil
}

// MaxEntries returns the number of slots the map was created with.
func (m *Map) MaxEntries() int { return int(m.maxEntries) }
