package bpfsys_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"golang.org/x/sys/unix"
)

// TestMapRoundTrip runs every map shim against the kernel: create, info,
// update, lookup, delete, dup, open by id and close.
func TestMapRoundTrip(t *testing.T) {
	bpftest.Require(t)
	fd, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_HASH, 4, 4, 8, 0, "bpfsys_test")
	if err != nil {
		t.Fatal(err)
	}
	defer bpfsys.CloseFD(fd)
	info, err := bpfsys.GetMapInfo(fd)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != unix.BPF_MAP_TYPE_HASH || info.KeySize != 4 || info.ValueSize != 4 || info.MaxEntries != 8 || info.ID == 0 {
		t.Errorf("map info %+v", info)
	}
	if err := bpfsys.UpdateU32(fd, 3, 42); err != nil {
		t.Fatal(err)
	}
	dup, err := bpfsys.DupFD(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer bpfsys.CloseFD(dup)
	byID, err := bpfsys.OpenMapByID(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer bpfsys.CloseFD(byID)
	for _, f := range []int{fd, dup, byID} {
		var v uint32
		if err := bpfsys.Lookup(f, 3, unsafe.Pointer(&v)); err != nil || v != 42 {
			t.Errorf("lookup through %d: %d, %v; want 42", f, v, err)
		}
	}
	if err := bpfsys.DeleteU32(fd, 3); err != nil {
		t.Fatal(err)
	}
	if err := bpfsys.DeleteU32(fd, 3); !errors.Is(err, unix.ENOENT) {
		t.Errorf("second delete: %v, want ENOENT", err)
	}
	var v uint32
	if err := bpfsys.Lookup(fd, 3, unsafe.Pointer(&v)); !errors.Is(err, unix.ENOENT) {
		t.Errorf("lookup after delete: %v, want ENOENT", err)
	}
}

// TestCreateMapFlags: the flags reach the kernel.
func TestCreateMapFlags(t *testing.T) {
	bpftest.Require(t)
	fd, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_HASH, 4, 4, 8, unix.BPF_F_NO_PREALLOC, "bpfsys_flags")
	if err != nil {
		t.Fatal(err)
	}
	defer bpfsys.CloseFD(fd)
	if info, err := bpfsys.GetMapInfo(fd); err != nil || info.MapFlags&unix.BPF_F_NO_PREALLOC == 0 {
		t.Errorf("map info %+v, %v: want BPF_F_NO_PREALLOC", info, err)
	}
	if _, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_RINGBUF, 0, 0, 1000, 0, "bpfsys_bad"); !errors.Is(err, unix.EINVAL) ||
		err.Error() != "bpf(BPF_MAP_CREATE): invalid argument" {
		t.Errorf("ring buffer of 1000 bytes: %v, want bpf(BPF_MAP_CREATE) EINVAL", err)
	}
}
