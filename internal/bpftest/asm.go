package bpftest

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// insn is struct bpf_insn: opcode, dst_reg in the low nibble and src_reg in
// the high nibble of one byte, a signed 16-bit offset and a signed 32-bit
// immediate.
type insn struct {
	code uint8
	regs uint8
	off  int16
	imm  int32
}

// license is what the programs declare: bpf_perf_event_output for socket
// filters and bpf_perf_event_read_value are GPL-only helpers, and these
// programs exist only inside the kernel of the machine running the tests.
const license = "GPL"

// Helper function ids from include/uapi/linux/bpf.h (__BPF_FUNC_MAPPER).
// x/sys/unix does not carry them.
const (
	fnMapLookupElem      = 1
	fnPerfEventOutput    = 25
	fnPerfEventReadValue = 55
	fnSkbLoadBytes       = 26
	fnRingbufOutput      = 130
	fnRingbufReserve     = 131
	fnRingbufSubmit      = 132
	fnRingbufDiscard     = 133
)

type reg uint8

const (
	r0  reg = unix.BPF_REG_0
	r1  reg = unix.BPF_REG_1
	r2  reg = unix.BPF_REG_2
	r3  reg = unix.BPF_REG_3
	r4  reg = unix.BPF_REG_4
	r5  reg = unix.BPF_REG_5
	r6  reg = unix.BPF_REG_6
	r7  reg = unix.BPF_REG_7
	r8  reg = unix.BPF_REG_8
	r9  reg = unix.BPF_REG_9
	r10 reg = unix.BPF_REG_10
)

// asm assembles a program; jumps name a label so that nobody counts
// instructions by hand.
type asm struct {
	insns  []insn
	labels map[string]int
	jumps  map[int]string // instruction index -> target label
}

func newAsm() *asm {
	return &asm{labels: map[string]int{}, jumps: map[int]string{}}
}

func (a *asm) emit(code uint8, dst, src reg, off int16, imm int32) {
	a.insns = append(a.insns, insn{code: code, regs: uint8(dst) | uint8(src)<<4, off: off, imm: imm})
}

// label marks the next instruction.
func (a *asm) label(name string) { a.labels[name] = len(a.insns) }

// mov64 sets dst to imm sign-extended to 64 bits.
func (a *asm) mov64(dst reg, imm int32) {
	a.emit(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_K, dst, 0, 0, imm)
}

// mov32 sets dst to imm zero-extended to 64 bits: the way to build
// BPF_F_CURRENT_CPU (0xffffffff) without also setting the high 32 bits, which
// bpf_perf_event_output would read as a context length.
func (a *asm) mov32(dst reg, imm uint32) {
	a.emit(unix.BPF_ALU|unix.BPF_MOV|unix.BPF_K, dst, 0, 0, int32(imm))
}

func (a *asm) movReg(dst, src reg) { a.emit(unix.BPF_ALU64|unix.BPF_MOV|unix.BPF_X, dst, src, 0, 0) }

func (a *asm) add(dst reg, imm int32) { a.emit(unix.BPF_ALU64|unix.BPF_ADD|unix.BPF_K, dst, 0, 0, imm) }

func (a *asm) and(dst reg, imm int32) { a.emit(unix.BPF_ALU64|unix.BPF_AND|unix.BPF_K, dst, 0, 0, imm) }

// load sets dst = *(size *)(src + off); size is unix.BPF_B, BPF_H, BPF_W or BPF_DW.
func (a *asm) load(size uint8, dst, src reg, off int16) {
	a.emit(unix.BPF_LDX|size|unix.BPF_MEM, dst, src, off, 0)
}

// store sets *(size *)(dst + off) = src.
func (a *asm) store(size uint8, dst reg, off int16, src reg) {
	a.emit(unix.BPF_STX|size|unix.BPF_MEM, dst, src, off, 0)
}

// storeImm sets *(size *)(dst + off) = imm.
func (a *asm) storeImm(size uint8, dst reg, off int16, imm int32) {
	a.emit(unix.BPF_ST|size|unix.BPF_MEM, dst, 0, off, imm)
}

// loadMapFD is the two-slot ld_imm64 with src_reg BPF_PSEUDO_MAP_FD, which the
// verifier rewrites into the address of the map behind fd.
func (a *asm) loadMapFD(dst reg, fd int) {
	a.emit(unix.BPF_LD|unix.BPF_DW|unix.BPF_IMM, dst, unix.BPF_PSEUDO_MAP_FD, 0, int32(fd))
	a.emit(0, 0, 0, 0, 0)
}

func (a *asm) call(fn int32) { a.emit(unix.BPF_JMP|unix.BPF_CALL, 0, 0, 0, fn) }

func (a *asm) exit() { a.emit(unix.BPF_JMP|unix.BPF_EXIT, 0, 0, 0, 0) }

// jmpImm jumps to label when dst <op> imm; op is unix.BPF_JEQ, BPF_JNE, ...
func (a *asm) jmpImm(op uint8, dst reg, imm int32, label string) {
	a.jumps[len(a.insns)] = label
	a.emit(unix.BPF_JMP|op|unix.BPF_K, dst, 0, 0, imm)
}

// ja jumps to label unconditionally.
func (a *asm) ja(label string) {
	a.jumps[len(a.insns)] = label
	a.emit(unix.BPF_JMP|unix.BPF_JA, 0, 0, 0, 0)
}

// program resolves the jumps and returns the instructions.
func (a *asm) program() ([]insn, error) {
	for at, name := range a.jumps {
		target, ok := a.labels[name]
		if !ok {
			return nil, fmt.Errorf("bpftest: jump to undefined label %q", name)
		}
		a.insns[at].off = int16(target - at - 1)
	}
	return a.insns, nil
}
