package eventpipe

import (
	"encoding/binary"
	"os"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/internal/bpftest"
)

func mapUpdate(t testing.TB, fd int, key uint32, value []byte) {
	t.Helper()
	require.NoError(t, bpfsys.Update(fd, key, unsafe.Pointer(&value[0]), unix.BPF_ANY))
}

// Stats.RingDropped is the sum over CPUs of the drop counter a program
// keeps, read from the map CountDrops names; the caller's descriptor stays
// open, a map of the wrong shape is EINVAL.
func TestCountDrops(t *testing.T) {
	bpftest.Require(t)
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	ncpu, err := bpftest.PossibleCPUs()
	require.NoError(t, err)

	fd, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, 0, "drops")
	require.NoError(t, err)
	defer unix.Close(fd)
	value := make([]byte, 8*ncpu)
	want := uint64(0)
	for c := range ncpu {
		binary.NativeEndian.PutUint64(value[8*c:], uint64(c+3))
		want += uint64(c + 3)
	}
	mapUpdate(t, fd, 0, value)
	require.NoError(t, p.CountDrops(fd))
	require.Equal(t, want, p.Stats().RingDropped)

	plain, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, "drops")
	require.NoError(t, err)
	defer unix.Close(plain)
	mapUpdate(t, plain, 0, []byte{7, 0, 0, 0, 0, 0, 0, 0})
	require.NoError(t, p.CountDrops(plain))
	require.Equal(t, uint64(7), p.Stats().RingDropped)

	wrong, err := bpfsys.CreateMap(unix.BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0, "drops")
	require.NoError(t, err)
	defer unix.Close(wrong)
	require.ErrorIs(t, p.CountDrops(wrong), unix.EINVAL)

	closePipe(t, l, p)
	require.Equal(t, uint64(7), p.Stats().RingDropped, "the last sum is kept after Close")
	_, err = unix.FcntlInt(uintptr(plain), unix.F_GETFD, 0)
	require.NoError(t, err)
	require.ErrorIs(t, p.CountDrops(plain), os.ErrClosed)
}
