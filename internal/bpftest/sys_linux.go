package bpftest

import (
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// kptr is a __aligned_u64 that holds a user-space pointer. Keeping it an
// unsafe.Pointer (rather than a uint64) lets the garbage collector see the
// referent for as long as the attr lives, so the kernel never reads freed or
// moved memory. That only matches the kernel's layout where pointers are 8
// bytes, which the array below checks at compile time.
type kptr struct{ p unsafe.Pointer }

// Both fail to compile unless kptr is 8 bytes.
var (
	_ [unsafe.Sizeof(kptr{}) - 8]struct{}
	_ [8 - unsafe.Sizeof(kptr{})]struct{}
)

// progLoadAttr is the BPF_PROG_LOAD member of union bpf_attr up to
// expected_attach_type.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              kptr
	license            kptr
	logLevel           uint32
	logSize            uint32
	logBuf             kptr
	kernVersion        uint32
	progFlags          uint32
	progName           [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex        uint32
	expectedAttachType uint32
}

// testRunAttr is the BPF_PROG_TEST_RUN member of union bpf_attr.
type testRunAttr struct {
	progFD      uint32
	retval      uint32
	dataSizeIn  uint32
	dataSizeOut uint32
	dataIn      kptr
	dataOut     kptr
	repeat      uint32
	duration    uint32
	ctxSizeIn   uint32
	ctxSizeOut  uint32
	ctxIn       kptr
	ctxOut      kptr
	flags       uint32
	cpu         uint32
	batchSize   uint32
	_           uint32
}

// errno strips the call name bpfsys wraps around the kernel's errno: the
// errors here name the command themselves.
func errno(err error) error {
	if se, ok := err.(*os.SyscallError); ok {
		return se.Err
	}
	return err
}

func mapCreate(typ, keySize, valueSize, maxEntries uint32, name string) (int, error) {
	fd, err := bpfsys.CreateMap(typ, keySize, valueSize, maxEntries, 0, name)
	if err != nil {
		return -1, fmt.Errorf("bpftest: BPF_MAP_CREATE %s: %w", name, errno(err))
	}
	return fd, nil
}

// progLoad loads a program without a verifier log first, and only on failure
// loads it again with one, so the common path costs no log buffer and the
// error still explains a rejection.
func progLoad(typ uint32, insns []insn, license, name string) (int, error) {
	lic := append([]byte(license), 0)
	attr := progLoadAttr{
		progType: typ,
		insnCnt:  uint32(len(insns)),
		insns:    kptr{p: unsafe.Pointer(&insns[0])},
		license:  kptr{p: unsafe.Pointer(&lic[0])},
		progName: bpfsys.ObjName(name),
	}
	fd, err := bpfsys.Call(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err == nil {
		return fd, nil
	}
	log := make([]byte, 1<<20)
	attr.logLevel = 1
	attr.logSize = uint32(len(log))
	attr.logBuf = kptr{p: unsafe.Pointer(&log[0])}
	fd, err2 := bpfsys.Call(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	if err2 == nil {
		// Loaded the second time round: nothing to explain.
		return fd, nil
	}
	n := 0
	for n < len(log) && log[n] != 0 {
		n++
	}
	if n == 0 {
		return -1, fmt.Errorf("bpftest: BPF_PROG_LOAD %s: %w", name, err)
	}
	return -1, fmt.Errorf("bpftest: BPF_PROG_LOAD %s: %w; verifier log:\n%s", name, err, log[:n])
}

// progTestRun runs a program once on the calling CPU with ctx as its context
// and returns the program's return value.
func progTestRun(fd int, ctx []byte) (uint32, error) {
	attr := testRunAttr{progFD: uint32(fd), ctxSizeIn: uint32(len(ctx)), ctxIn: kptr{p: unsafe.Pointer(unsafe.SliceData(ctx))}}
	if _, err := bpfsys.Call(unix.BPF_PROG_TEST_RUN, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return 0, fmt.Errorf("bpftest: BPF_PROG_TEST_RUN: %w", err)
	}
	return attr.retval, nil
}

// recvTrunc receives one datagram without blocking and returns its full
// length even when buf is shorter (MSG_TRUNC); unlike unix.Recvfrom it never
// builds a Sockaddr, so it does not allocate.
func recvTrunc(fd int, buf []byte) (int, error) {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(buf))),
			uintptr(len(buf)), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
		switch errno {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, errno
		}
	}
}

// send sends one datagram without blocking.
func send(fd int, b []byte) error {
	for {
		err := unix.Sendto(fd, b, unix.MSG_DONTWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
