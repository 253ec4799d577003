package bpfsys

import (
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestAttrLayout pins the attribute structs to union bpf_attr's layout
// (include/uapi/linux/bpf.h): u32 map_fd, then 8-byte key, value and flags;
// u32 bpf_fd, u32 info_len, 8-byte info; and struct bpf_map_info's head.
func TestAttrLayout(t *testing.T) {
	var e mapElemAttr
	if o := [...]uintptr{unsafe.Offsetof(e.mapFD), unsafe.Offsetof(e.key), unsafe.Offsetof(e.value), unsafe.Offsetof(e.flags), unsafe.Sizeof(e)}; o != [...]uintptr{0, 8, 16, 24, 32} {
		t.Errorf("map elem attr offsets/size %v", o)
	}
	var i infoAttr
	if o := [...]uintptr{unsafe.Offsetof(i.fd), unsafe.Offsetof(i.infoLen), unsafe.Offsetof(i.info)}; o != [...]uintptr{0, 4, 8} || unsafe.Offsetof(i.info)+8 != infoAttrSize {
		t.Errorf("info attr offsets %v", o)
	}
	var m MapInfo
	if unsafe.Offsetof(m.Type) != 0 || unsafe.Offsetof(m.ID) != 4 || unsafe.Offsetof(m.MaxEntries) != 16 || unsafe.Offsetof(m.MapFlags) != 20 {
		t.Errorf("map info offsets: type %d, id %d, max_entries %d, map_flags %d",
			unsafe.Offsetof(m.Type), unsafe.Offsetof(m.ID), unsafe.Offsetof(m.MaxEntries), unsafe.Offsetof(m.MapFlags))
	}
	var c mapCreateAttr
	if o := unsafe.Offsetof(c.mapName); o != 28 {
		t.Errorf("map create attr: map_name at %d, want 28", o)
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
		got, err := ParseCPUList(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "1-", "-1", "3-1", "0,,1", "1-2-3"} {
		if got, err := ParseCPUList(in); !errors.Is(err, unix.EINVAL) || got != nil {
			t.Errorf("ParseCPUList(%q) = %v, %v; want EINVAL", in, got, err)
		}
	}
}

func TestObjName(t *testing.T) {
	n := ObjName("a_name_much_longer_than_sixteen_bytes")
	if n[len(n)-1] != 0 || string(n[:len(n)-1]) != "a_name_much_lon" {
		t.Errorf("ObjName cut to %q", n)
	}
}

// TestBadDescriptors: the shims name the call and wrap the kernel's errno.
func TestBadDescriptors(t *testing.T) {
	const closed = 1<<31 - 1 // never open here: above any RLIMIT_NOFILE
	cases := []struct {
		err  error
		want string
	}{
		{func() error { _, err := DupFD(closed); return err }(), "fcntl(F_DUPFD_CLOEXEC): bad file descriptor"},
		{func() error { _, err := GetMapInfo(closed); return err }(), "bpf(BPF_OBJ_GET_INFO_BY_FD): bad file descriptor"},
		{func() error { var v uint32; return Lookup(closed, 0, unsafe.Pointer(&v)) }(), "bpf(BPF_MAP_LOOKUP_ELEM): bad file descriptor"},
		{UpdateU32(closed, 0, 0), "bpf(BPF_MAP_UPDATE_ELEM): bad file descriptor"},
		{DeleteU32(closed, 0), "bpf(BPF_MAP_DELETE_ELEM): bad file descriptor"},
		{CloseFD(closed), "close: bad file descriptor"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, unix.EBADF) || len(c.err.Error()) < len(c.want) || c.err.Error()[:len(c.want)] != c.want {
			t.Errorf("error %v, want %q wrapping EBADF", c.err, c.want)
		}
	}
	if err := CloseFD(-1); err != nil {
		t.Errorf("CloseFD(-1) = %v, want nil", err)
	}
}
