package ringbuf

import (
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBPFAttrLayout pins the attribute structs to union bpf_attr's layout
// (include/uapi/linux/bpf.h): u32 map_fd, then 8-byte key, value and flags;
// u32 bpf_fd, u32 info_len, 8-byte info.
func TestBPFAttrLayout(t *testing.T) {
	var e bpfMapElemAttr
	if o := [...]uintptr{unsafe.Offsetof(e.mapFD), unsafe.Offsetof(e.key), unsafe.Offsetof(e.value), unsafe.Offsetof(e.flags), unsafe.Sizeof(e)}; o != [...]uintptr{0, 8, 16, 24, 32} {
		t.Errorf("map elem attr offsets/size %v", o)
	}
	var i bpfInfoAttr
	if o := [...]uintptr{unsafe.Offsetof(i.fd), unsafe.Offsetof(i.infoLen), unsafe.Offsetof(i.info)}; o != [...]uintptr{0, 4, 8} || unsafe.Offsetof(i.info)+8 != bpfInfoAttrSize {
		t.Errorf("info attr offsets %v", o)
	}
	var m bpfMapInfo
	if unsafe.Offsetof(m.typ) != 0 || unsafe.Offsetof(m.maxEntries) != 16 {
		t.Errorf("map info offsets: type %d, max_entries %d", unsafe.Offsetof(m.typ), unsafe.Offsetof(m.maxEntries))
	}
	var p unix.PerfEventMmapPage
	if unsafe.Offsetof(p.Data_head) != perfOffDataHead || unsafe.Offsetof(p.Data_tail) != perfOffDataTail ||
		unsafe.Offsetof(p.Data_offset) != perfOffDataOffset || unsafe.Offsetof(p.Data_size) != perfOffDataSize {
		t.Errorf("perf_event_mmap_page offsets disagree with x/sys/unix")
	}
}

func TestParseCPUList(t *testing.T) {
	good := map[string]string{
		"0":         "[0]",
		"0-1":       "[0 1]",
		"0-3,5,7-8": "[0 1 2 3 5 7 8]",
		"2,4":       "[2 4]",
		"10-10":     "[10]",
	}
	for in, want := range good {
		got, err := parseCPUList(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("parseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "1-", "-1", "3-1", "0,,1", "1-2-3"} {
		if got, err := parseCPUList(in); !errors.Is(err, unix.EINVAL) {
			t.Errorf("parseCPUList(%q) = %v, %v; want EINVAL", in, got, err)
		}
	}
}
