package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// openMapByID opens a new file for the map with this id. Unlike a dup, which
// shares the caller's file, the descriptor names a file of its own, and the
// kernel ties the perf event array entries inserted through a file to that
// file (kernel/bpf/arraymap.c: perf_event_fd_array_get_ptr records the
// map_file, and perf_event_fd_array_release, run when that file is released,
// deletes the entries whose map_file it is). The kernel allows the call with
// CAP_SYS_ADMIN only and answers EPERM otherwise. Tests replace it to force
// that refusal.
var openMapByID = bpfsys.OpenMapByID

// openBPFOutput opens a disabled PERF_COUNT_SW_BPF_OUTPUT event on cpu for
// every process. wakeup is the number of records (or, with watermark, of
// bytes) the kernel writes before it wakes the reader.
func openBPFOutput(cpu int, wakeup uint32, watermark bool) (int, error) {
	return openOutputEvent(cpu, wakeup, watermark, false)
}

// openOutputEvent is openBPFOutput, and with timed openTimedEvent.
func openOutputEvent(cpu int, wakeup uint32, watermark, timed bool) (int, error) {
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
	if timed {
		attr.Sample_type |= unix.PERF_SAMPLE_TIME
		attr.Bits |= unix.PerfBitUseClockID
		attr.Clockid = unix.CLOCK_MONOTONIC
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

// dupMap takes the reader's own reference to the map a constructor is
// given, so the caller may close theirs; tests replace it to play a caller's
// descriptor number being reused between two steps.
var dupMap = bpfsys.DupFD

// openMap takes the reader's own reference to the caller's map and then
// checks the type of the map behind that reference. Checking the duplicate
// rather than the caller's number means the map kept is the map checked,
// even if the caller's number is closed and reused meanwhile.
func openMap(fd int, typ uint32) (int, bpfsys.MapInfo, error) {
	// The kernel reads a descriptor as a 32-bit int: 1<<32+fd would be fd.
	if fd < 0 || fd > 1<<31-1 {
		return -1, bpfsys.MapInfo{}, fmt.Errorf("map descriptor %d out of range: %w", fd, unix.EBADF)
	}
	dup, err := dupMap(fd)
	if err != nil {
		return -1, bpfsys.MapInfo{}, fmt.Errorf("map descriptor %d: %w", fd, err)
	}
	info, err := bpfsys.GetMapInfo(dup)
	switch {
	case err == nil && !isBPFMap(dup):
		// A program or link answers BPF_OBJ_GET_INFO_BY_FD with its own
		// kind of info, which must not be read as a map's.
		err = fmt.Errorf("descriptor %d is not a BPF map: %w", fd, unix.EINVAL)
	case errors.Is(err, unix.EINVAL):
		// What the kernel says for a descriptor that is not a BPF object.
		err = fmt.Errorf("descriptor %d is not a BPF map: %w", fd, err)
	case err == nil && info.Type != typ:
		err = fmt.Errorf("map is %s, not %s: %w", mapTypeName(info.Type), mapTypeName(typ), unix.EINVAL)
	}
	if err != nil {
		bpfsys.CloseFD(dup)
		return -1, bpfsys.MapInfo{}, err
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
