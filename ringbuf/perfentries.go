//go:build linux

package ringbuf

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// useOwnMapFile replaces the reader's duplicate of the map descriptor with a
// map file of its own, opened by the map's id, when the kernel permits it
// and the map lets the kernel clean up after it (BPF_F_PRESERVE_ELEMS keeps
// entries past their file's release). The entries the reader inserts are
// then tied to that file, and closing it removes exactly them: a newer
// reader that has since replaced them at the same keys keeps its own. Where
// the kernel refuses (EPERM without CAP_SYS_ADMIN) the reader keeps the
// duplicate and Close deletes its keys instead. The id names the same map
// as the duplicate: ids are not reused while the map exists, and the
// duplicate keeps it alive until the new file is open.
func (r *PerfReader) useOwnMapFile(info bpfsys.MapInfo) {
	if info.MapFlags&unix.BPF_F_PRESERVE_ELEMS != 0 {
		return
	}
	own, err := openMapByID(info.ID)
	if err != nil {
		return
	}
	bpfsys.CloseFD(r.mapFD)
	r.mapFD, r.owned = own, true
}

// removeEntries takes the reader's perf events out of the array. With a map
// file of its own the reader closes that file, and the kernel deletes the
// entries inserted through it, and only those, before close returns (the
// file's release runs on the way back from the system call). Otherwise it
// deletes the keys it stored at.
func (r *PerfReader) removeEntries() []error {
	if r.owned {
		err := bpfsys.CloseFD(r.mapFD)
		r.mapFD, r.owned = -1, false
		return []error{err}
	}
	var errs []error
	for _, key := range r.keys {
		if err := bpfsys.DeleteU32(r.mapFD, key); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("CPU %d: %w", key, err))
		}
	}
	return errs
}
