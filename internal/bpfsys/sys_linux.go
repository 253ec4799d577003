//go:build linux

package bpfsys

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PtrPad widens an unsafe.Pointer field to the __aligned_u64 union bpf_attr
// uses for pointers, on 32-bit (little-endian) platforms; it is empty on
// 64-bit ones. Pointer fields stay unsafe.Pointer, rather than uintptr, so
// the garbage collector and stack copying see the referent while the
// syscall runs. It must not be a struct's last field: Go pads a struct that
// ends in a zero-size field, and the kernel rejects non-zero bytes past the
// fields a command uses.
type PtrPad [8 - unsafe.Sizeof(uintptr(0))]byte

// mapCreateAttr is the BPF_MAP_CREATE variant of union bpf_attr, up to
// map_name; the kernel zero-fills the fields left out.
type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	mapName    [unix.BPF_OBJ_NAME_LEN]byte
}

// mapElemAttr is the BPF_MAP_*_ELEM variant of union bpf_attr.
type mapElemAttr struct {
	mapFD uint32
	_     uint32
	key   unsafe.Pointer
	_     PtrPad
	value unsafe.Pointer
	_     PtrPad
	flags uint64
}

// infoAttr is the BPF_OBJ_GET_INFO_BY_FD variant of union bpf_attr.
type infoAttr struct {
	fd      uint32
	infoLen uint32
	info    unsafe.Pointer
	_       PtrPad
}

// infoAttrSize is the size passed for an infoAttr. Not unsafe.Sizeof: a
// struct ending in a zero-size field (PtrPad on 64-bit) is padded, the
// padding's content is unspecified, and the kernel rejects an attribute
// with non-zero bytes past the fields the command uses.
const infoAttrSize = 16

// getByIDAttr is the BPF_MAP_GET_FD_BY_ID variant of union bpf_attr.
type getByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

// MapInfo is the leading part of struct bpf_map_info; the kernel copies no
// more than the length asked for, so the tail not needed is left off.
type MapInfo struct {
	Type       uint32
	ID         uint32
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	MapFlags   uint32
}

// Call issues bpf(2) and returns its result or the bare errno. The
// descriptors it returns are close-on-exec: the kernel always creates map
// and program descriptors with O_CLOEXEC.
func Call(cmd uintptr, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// ObjName is s as a NUL-terminated BPF object name, cut to fit.
func ObjName(s string) (n [unix.BPF_OBJ_NAME_LEN]byte) {
	copy(n[:len(n)-1], s)
	return n
}

// CreateMap creates a BPF map with map flags and a name.
func CreateMap(typ, keySize, valueSize, maxEntries, flags uint32, name string) (int, error) {
	attr := mapCreateAttr{
		mapType:    typ,
		keySize:    keySize,
		valueSize:  valueSize,
		maxEntries: maxEntries,
		mapFlags:   flags,
		mapName:    ObjName(name),
	}
	fd, err := Call(unix.BPF_MAP_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, os.NewSyscallError("bpf(BPF_MAP_CREATE)", err)
	}
	return fd, nil
}

// GetMapInfo returns the type and geometry of the BPF map behind fd.
func GetMapInfo(fd int) (MapInfo, error) {
	var info MapInfo
	attr := infoAttr{
		fd:      uint32(fd),
		infoLen: uint32(unsafe.Sizeof(info)),
		info:    unsafe.Pointer(&info),
	}
	_, err := Call(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), infoAttrSize)
	if errors.Is(err, unix.EBADFD) {
		// The kernel says EBADFD for a descriptor that is not open here;
		// callers test for EBADF, so the error matches both.
		return info, fmt.Errorf("bpf(BPF_OBJ_GET_INFO_BY_FD): %w (%w)", unix.EBADF, err)
	}
	if err != nil {
		return info, os.NewSyscallError("bpf(BPF_OBJ_GET_INFO_BY_FD)", err)
	}
	return info, nil
}

// OpenMapByID opens a new file for the map with this id: unlike a dup,
// which shares the caller's file, the descriptor names a file of its own.
// The kernel allows it with CAP_SYS_ADMIN only and answers EPERM otherwise.
func OpenMapByID(id uint32) (int, error) {
	attr := getByIDAttr{id: id}
	fd, err := Call(unix.BPF_MAP_GET_FD_BY_ID, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return -1, os.NewSyscallError("bpf(BPF_MAP_GET_FD_BY_ID)", err)
	}
	return fd, nil
}

// mapElem runs one of the BPF_MAP_*_ELEM commands; value is nil for a
// delete.
func mapElem(cmd uintptr, fd int, key, value unsafe.Pointer, flags uint64) error {
	attr := mapElemAttr{mapFD: uint32(fd), key: key, value: value, flags: flags}
	_, err := Call(cmd, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	return err
}

// Lookup reads the value at a 4-byte key into value, which must point to as
// many bytes as the kernel writes (value_size, times the possible CPUs for
// a per-CPU map).
func Lookup(fd int, key uint32, value unsafe.Pointer) error {
	if err := mapElem(unix.BPF_MAP_LOOKUP_ELEM, fd, unsafe.Pointer(&key), value, 0); err != nil {
		return os.NewSyscallError("bpf(BPF_MAP_LOOKUP_ELEM)", err)
	}
	return nil
}

// Update stores the value at a 4-byte key; value points to value_size
// bytes (times the possible CPUs for a per-CPU map) and flags is BPF_ANY,
// BPF_NOEXIST or BPF_EXIST.
func Update(fd int, key uint32, value unsafe.Pointer, flags uint64) error {
	if err := mapElem(unix.BPF_MAP_UPDATE_ELEM, fd, unsafe.Pointer(&key), value, flags); err != nil {
		return os.NewSyscallError("bpf(BPF_MAP_UPDATE_ELEM)", err)
	}
	return nil
}

// UpdateU32 stores value at key (BPF_ANY) in a map with 4-byte keys and
// values.
func UpdateU32(fd int, key, value uint32) error {
	return Update(fd, key, unsafe.Pointer(&value), unix.BPF_ANY)
}

// DeleteU32 removes a 4-byte key; the error wraps ENOENT when it was
// absent.
func DeleteU32(fd int, key uint32) error {
	if err := mapElem(unix.BPF_MAP_DELETE_ELEM, fd, unsafe.Pointer(&key), nil, 0); err != nil {
		return os.NewSyscallError("bpf(BPF_MAP_DELETE_ELEM)", err)
	}
	return nil
}

// DupFD returns a close-on-exec duplicate of fd: a reference of the
// caller's own, so the original may be closed and a reused descriptor
// number can never be mistaken for the object.
func DupFD(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}

// CloseFD closes fd; a negative fd (none) is nil.
func CloseFD(fd int) error {
	if fd < 0 {
		return nil
	}
	return os.NewSyscallError("close", unix.Close(fd))
}

// ParseCPUList parses the kernel's cpulist format, e.g. "0-3,5,7-8", as
// /sys/devices/system/cpu/online and possible hold it.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("bad CPU list %q: %w", s, unix.EINVAL)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("bad CPU list %q: %w", s, unix.EINVAL)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
