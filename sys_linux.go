//go:build linux

package eventpipe

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpfMapCreateAttr is the BPF_MAP_CREATE variant of union bpf_attr, up to
// map_name.
type bpfMapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	innerMapFD uint32
	numaNode   uint32
	mapName    [unix.BPF_OBJ_NAME_LEN]byte
}

// createMap creates a BPF map, close-on-exec as every bpf(2) descriptor.
func createMap(typ, keySize, valueSize, maxEntries uint32, name string) (int, error) {
	attr := bpfMapCreateAttr{mapType: typ, keySize: keySize, valueSize: valueSize, maxEntries: maxEntries}
	copy(attr.mapName[:len(attr.mapName)-1], name)
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_CREATE, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, os.NewSyscallError("bpf(BPF_MAP_CREATE)", errno)
	}
	return int(fd), nil
}

func closeFD(fd int) error {
	return os.NewSyscallError("close", unix.Close(fd))
}

// bpfMapElemAttr is the BPF_MAP_*_ELEM variant of union bpf_attr.
type bpfMapElemAttr struct {
	mapFD uint32
	_     uint32
	key   unsafe.Pointer
	_     ptrPad
	value unsafe.Pointer
	_     ptrPad
	flags uint64
}

// ptrPad widens an unsafe.Pointer field to the __aligned_u64 bpf_attr uses
// for pointers on 32-bit platforms; empty on 64-bit ones. The fields stay
// pointers so the garbage collector sees the referents during the call.
type ptrPad [8 - unsafe.Sizeof(uintptr(0))]byte

// bpfInfoAttr is the BPF_OBJ_GET_INFO_BY_FD variant of union bpf_attr.
type bpfInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    unsafe.Pointer
	_       ptrPad
}

// bpfInfoAttrSize is the size passed for a bpfInfoAttr: not unsafe.Sizeof,
// whose trailing padding the kernel would have to find zero.
const bpfInfoAttrSize = 16

// bpfMapInfo is the leading part of struct bpf_map_info.
type bpfMapInfo struct {
	typ        uint32
	id         uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
}

func mapInfo(fd int) (bpfMapInfo, error) {
	var info bpfMapInfo
	attr := bpfInfoAttr{fd: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: unsafe.Pointer(&info)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), bpfInfoAttrSize)
	if errno != 0 {
		return info, os.NewSyscallError("bpf(BPF_OBJ_GET_INFO_BY_FD)", errno)
	}
	return info, nil
}

// mapLookup reads the value at key into value, which must be as long as the
// kernel writes (value_size, times the possible CPUs for a per-CPU map).
func mapLookup(fd int, key uint32, value []byte) error {
	attr := bpfMapElemAttr{
		mapFD: uint32(fd),
		key:   unsafe.Pointer(&key),
		value: unsafe.Pointer(&value[0]),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_LOOKUP_ELEM, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return os.NewSyscallError("bpf(BPF_MAP_LOOKUP_ELEM)", errno)
	}
	return nil
}

func dupFD(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}
