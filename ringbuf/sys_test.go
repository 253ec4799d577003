package ringbuf

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPerfMmapPageLayout pins the offsets the reader uses to
// perf_event_mmap_page as golang.org/x/sys/unix lays it out.
func TestPerfMmapPageLayout(t *testing.T) {
	var p unix.PerfEventMmapPage
	if unsafe.Offsetof(p.Data_head) != perfOffDataHead || unsafe.Offsetof(p.Data_tail) != perfOffDataTail ||
		unsafe.Offsetof(p.Data_offset) != perfOffDataOffset || unsafe.Offsetof(p.Data_size) != perfOffDataSize {
		t.Errorf("perf_event_mmap_page offsets disagree with x/sys/unix")
	}
}
