package bpftest

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// OpenMap returns a Map over a duplicate of fd, a BPF map someone else
// created (a library under test that creates its own maps), so that
// producers can write into it and lookups can check it. Closing the Map
// closes the duplicate only.
func OpenMap(fd int) (*Map, error) {
	dup, err := bpfsys.DupFD(fd)
	if err != nil {
		return nil, fmt.Errorf("bpftest: open map %d: %w", fd, errno(err))
	}
	info, err := bpfsys.GetMapInfo(dup)
	if err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("bpftest: open map %d: %w", fd, errno(err))
	}
	return &Map{fd: dup, typ: info.Type, valueSize: info.ValueSize, maxEntries: info.MaxEntries}, nil
}

// MaxEntries returns the number of slots the map was created with.
func (m *Map) MaxEntries() int { return int(m.maxEntries) }
