package bpftest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestAsmJumps(t *testing.T) {
	a := newAsm()
	a.jmpImm(unix.BPF_JEQ, r1, 0, "end") // 0
	a.mov64(r0, 1)                       // 1
	a.loadMapFD(r2, 7)                   // 2, 3
	a.label("end")
	a.exit() // 4
	insns, err := a.program()
	require.NoError(t, err)
	require.Len(t, insns, 5)
	assert.Equal(t, int16(3), insns[0].off, "offsets count from the next instruction, ld_imm64 is two")
	assert.Equal(t, insn{code: 0x18, regs: 2 | unix.BPF_PSEUDO_MAP_FD<<4, imm: 7}, insns[2])
	assert.Equal(t, insn{}, insns[3])

	b := newAsm()
	b.ja("nowhere")
	_, err = b.program()
	require.Error(t, err)
}

func TestProgLoadReportsVerifierLog(t *testing.T) {
	Require(t)
	a := newAsm()
	a.movReg(r0, r2) // r2 was never written: the verifier refuses
	a.exit()
	insns, err := a.program()
	require.NoError(t, err)
	_, err = progLoad(unix.BPF_PROG_TYPE_SOCKET_FILTER, insns, license, "bpftest_bad")
	require.ErrorIs(t, err, unix.EACCES)
	assert.Contains(t, err.Error(), "verifier log")
	assert.Contains(t, err.Error(), "R2 !read_ok")
}
