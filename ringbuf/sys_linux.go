package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ptrPad widens an unsafe.Pointer field to the __aligned_u64 union bpf_attr
// uses for pointers, on 32-bit (little-endian) platforms; it is empty on
// 64-bit ones. Pointer fields stay unsafe.Pointer, rather than uintptr, so
// the garbage collector and stack copying see the referent while the
// syscall runs.
type ptrPad [8 - unsafe.Sizeof(uintptr(0))]byte

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

// bpfInfoAttr is the BPF_OBJ_GET_INFO_BY_FD variant of union bpf_attr.
type bpfInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    unsafe.Pointer
	_       ptrPad
}

// bpfInfoAttrSize is the size passed for a bpfInfoAttr. Not unsafe.Sizeof:
// a struct ending in a zero-size field (ptrPad on 64-bit) is padded, the
// padding's content is unspecified, and the kernel rejects an attribute
// with non-zero bytes past the fields the command uses.
const bpfInfoAttrSize = 16

// bpfMapInfo is the leading part of struct bpf_map_info; the kernel copies
// no more than infoLen bytes, so the tail we do not need can be left off.
type bpfMapInfo struct {
	typ        uint32
	id         uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
}

func bpfCall(cmd uintptr, attr unsafe.Pointer, size uintptr) error {
	_, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(attr), size)
	if errno != 0 {
		return errno
	}
	return nil
}

// mapInfo returns the type and geometry of the BPF map behind fd.
func mapInfo(fd int) (bpfMapInfo, error) {
	var info bpfMapInfo
	attr := bpfInfoAttr{
		fd:      uint32(fd),
		infoLen: uint32(unsafe.Sizeof(info)),
		info:    unsafe.Pointer(&info),
	}
	err := bpfCall(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), bpfInfoAttrSize)
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

// bpfGetByIDAttr is the BPF_MAP_GET_FD_BY_ID variant of union bpf_attr.
type bpfGetByIDAttr struct {
	id        uint32
	nextID    uint32
	openFlags uint32
}

// openMapByID opens a new file for the map with this id. Unlike a dup, which
// shares the caller's file, the descriptor names a file of its own, and the
// kernel ties the perf event array entries inserted through a file to that
// file (kernel/bpf/arraymap.c: perf_event_fd_array_get_ptr records the
// map_file, and perf_event_fd_array_release, run when that file is released,
// deletes the entries whose map_file it is). The kernel allows the call with
// CAP_SYS_ADMIN only and answers EPERM otherwise. Tests replace it to force
// that refusal.
var openMapByID = func(id uint32) (int, error) {
	attr := bpfGetByIDAttr{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_MAP_GET_FD_BY_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, os.NewSyscallError("bpf(BPF_MAP_GET_FD_BY_ID)", errno)
	}
	return int(fd), nil // close-on-exec, as every BPF descriptor
}

// mapUpdateU32 stores value at key in a map with 4-byte keys and values.
func mapUpdateU32(mapFD int, key, value uint32) error {
	attr := bpfMapElemAttr{
		mapFD: uint32(mapFD),
		key:   unsafe.Pointer(&key),
		value: unsafe.Pointer(&value),
		flags: unix.BPF_ANY,
	}
	if err := bpfCall(unix.BPF_MAP_UPDATE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return os.NewSyscallError("bpf(BPF_MAP_UPDATE_ELEM)", err)
	}
	return nil
}

// mapDeleteU32 removes key from a map with 4-byte keys.
func mapDeleteU32(mapFD int, key uint32) error {
	attr := bpfMapElemAttr{
		mapFD: uint32(mapFD),
		key:   unsafe.Pointer(&key),
	}
	if err := bpfCall(unix.BPF_MAP_DELETE_ELEM, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return os.NewSyscallError("bpf(BPF_MAP_DELETE_ELEM)", err)
	}
	return nil
}

// openBPFOutput opens a disabled PERF_COUNT_SW_BPF_OUTPUT event on cpu for
// every process. wakeup is the number of records (or, with watermark, of
// bytes) the kernel writes before it wakes the reader.
func openBPFOutput(cpu int, wakeup uint32, watermark bool) (int, error) {
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
		Sample:      1,
		Sample_type: unix.PERF_SAMPLE_RAW,
		Bits:        unix.PerfBitDisabled,
		Wakeup:      wakeup,
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	if watermark {
		attr.Bits |= unix.PerfBitWatermark
	}
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return -1, os.NewSyscallError("perf_event_open", err)
	}
	return fd, nil
}

// perfEnable starts an event opened by openBPFOutput.
func perfEnable(fd int) error {
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return os.NewSyscallError("ioctl(PERF_EVENT_IOC_ENABLE)", err)
	}
	return nil
}

// mmapShared maps length bytes of fd at offset.
func mmapShared(fd int, offset int64, length int, prot int) ([]byte, error) {
	b, err := unix.Mmap(fd, offset, length, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return b, nil
}

// munmap releases a mapping made by mmapShared; nil is a no-op.
func munmap(b []byte) error {
	if b == nil {
		return nil
	}
	return os.NewSyscallError("munmap", unix.Munmap(b))
}

// dupMap is dupFD for the map a constructor is given; tests replace it to
// play a caller's descriptor number being reused between two steps.
var dupMap = dupFD

// openMap takes the reader's own reference to the caller's map and then
// checks the type of the map behind that reference. Checking the duplicate
// rather than the caller's number means the map kept is the map checked,
// even if the caller's number is closed and reused meanwhile.
func openMap(fd int, typ uint32) (int, bpfMapInfo, error) {
	// The kernel reads a descriptor as a 32-bit int: 1<<32+fd would be fd.
	if fd < 0 || fd > 1<<31-1 {
		return -1, bpfMapInfo{}, fmt.Errorf("map descriptor %d out of range: %w", fd, unix.EBADF)
	}
	dup, err := dupMap(fd)
	if err != nil {
		return -1, bpfMapInfo{}, fmt.Errorf("map descriptor %d: %w", fd, err)
	}
	info, err := mapInfo(dup)
	switch {
	case err == nil && !isBPFMap(dup):
		// A program or link answers BPF_OBJ_GET_INFO_BY_FD with its own
		// kind of info, which must not be read as a map's.
		err = fmt.Errorf("descriptor %d is not a BPF map: %w", fd, unix.EINVAL)
	case errors.Is(err, unix.EINVAL):
		// What the kernel says for a descriptor that is not a BPF object.
		err = fmt.Errorf("descriptor %d is not a BPF map: %w", fd, err)
	case err == nil && info.typ != typ:
		err = fmt.Errorf("map is %s, not %s: %w", mapTypeName(info.typ), mapTypeName(typ), unix.EINVAL)
	}
	if err != nil {
		closeFD(dup)
		return -1, bpfMapInfo{}, err
	}
	return dup, info, nil
}

// isBPFMap reports whether fd is a BPF map, by the name of its anonymous
// inode. Where /proc is not mounted it cannot tell, and says yes: the
// type check still runs.
func isBPFMap(fd int) bool {
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return err != nil || target == "anon_inode:bpf-map"
}

// bpfFRBOverwrite is BPF_F_RB_OVERWRITE (include/uapi/linux/bpf.h, Linux
// 6.19): a ring buffer whose producers overwrite the oldest records when it
// is full instead of failing, and whose consumer must follow an overwrite
// position the reader here does not know about.
const bpfFRBOverwrite = 1 << 19

// checkRingFlags refuses the ring buffer flags whose consumer protocol the
// reader does not implement.
func checkRingFlags(flags uint32) error {
	if flags&bpfFRBOverwrite != 0 {
		return fmt.Errorf("ring buffer in overwrite mode (BPF_F_RB_OVERWRITE, map flags %#x): %w", flags, unix.EOPNOTSUPP)
	}
	return nil
}

// dupFD takes the reader's own reference to a caller's descriptor, so the
// caller may close theirs and a reused descriptor number can never be
// mistaken for the map.
func dupFD(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}

func closeFD(fd int) error {
	if fd < 0 {
		return nil
	}
	return os.NewSyscallError("close", unix.Close(fd))
}

// onlineCPUs reads the kernel's list of online CPUs.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return parseCPUList(strings.TrimSpace(string(b)))
}

// parseCPUList parses the kernel's cpulist format, e.g. "0-3,5,7-8".
func parseCPUList(s string) ([]int, error) {
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
