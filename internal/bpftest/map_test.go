package bpftest

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestArray(t *testing.T) {
	Require(t)
	m, err := NewArray(4, 4)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, m.FD(), 0)

	v, err := m.LookupU32(3)
	require.NoError(t, err, "array slots always exist")
	assert.Zero(t, v)
	require.NoError(t, m.UpdateU32(3, 0xdeadbeef))
	v, err = m.LookupU32(3)
	require.NoError(t, err)
	assert.Equal(t, uint32(0xdeadbeef), v)

	_, err = m.LookupU32(4)
	require.ErrorIs(t, err, unix.ENOENT, "key past max entries")
	require.ErrorIs(t, m.Delete(0), unix.EINVAL, "arrays refuse deletion")

	require.NoError(t, m.Close())
	assert.Equal(t, -1, m.FD())
	require.ErrorIs(t, m.Close(), os.ErrClosed)
	_, err = m.LookupU32(0)
	require.ErrorIs(t, err, os.ErrClosed)
	require.ErrorIs(t, m.UpdateU32(0, 1), os.ErrClosed)
	require.ErrorIs(t, m.Delete(0), os.ErrClosed)
}

func TestArrayWideValues(t *testing.T) {
	Require(t)
	m, err := NewArray(1, 16)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.LookupU32(0)
	require.ErrorIs(t, err, unix.EINVAL)
	require.ErrorIs(t, m.UpdateU32(0, 1), unix.EINVAL)

	for _, bad := range [][2]int{{0, 4}, {-1, 4}, {1, 0}} {
		_, err := NewArray(bad[0], bad[1])
		require.ErrorIs(t, err, unix.EINVAL, "NewArray(%d, %d)", bad[0], bad[1])
	}
}

func TestPerfEventArraySlots(t *testing.T) {
	Require(t)
	ncpu, err := PossibleCPUs()
	require.NoError(t, err)
	m, err := NewPerfEventArray(0)
	require.NoError(t, err)
	defer m.Close()

	for cpu := range ncpu {
		_, err := m.LookupU32(uint32(cpu))
		require.ErrorIs(t, err, unix.ENOENT, "fresh slot %d", cpu)
	}
	_, err = m.LookupU32(uint32(ncpu))
	require.ErrorIs(t, err, unix.ENOENT, "one slot per possible CPU")

	var allowed unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &allowed))
	stored := 0
	for cpu := range ncpu {
		fd, err := OpenPerfEvent(cpu)
		if err != nil {
			continue // offline
		}
		require.NoError(t, m.UpdateU32(uint32(cpu), uint32(fd)))
		// The array holds the event itself: closing the fd does not
		// empty the slot, only a delete (or closing the map) does.
		require.NoError(t, unix.Close(fd))
		_, err = m.LookupU32(uint32(cpu))
		require.NoError(t, err, "slot %d holds an event (whichever CPU we run on)", cpu)
		stored++
	}
	require.NotZero(t, stored)
	for cpu := range ncpu {
		if err := m.Delete(uint32(cpu)); err != nil {
			require.ErrorIs(t, err, unix.ENOENT)
			continue
		}
		_, err := m.LookupU32(uint32(cpu))
		require.ErrorIs(t, err, unix.ENOENT, "slot %d after delete", cpu)
		require.ErrorIs(t, m.Delete(uint32(cpu)), unix.ENOENT)
	}
}

func TestPerfEventArraySize(t *testing.T) {
	Require(t)
	m, err := NewPerfEventArray(3)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.LookupU32(2)
	require.ErrorIs(t, err, unix.ENOENT)
	_, err = m.LookupU32(3)
	require.ErrorIs(t, err, unix.ENOENT)

	_, err = NewPerfEventArray(-1)
	require.ErrorIs(t, err, unix.EINVAL)
}

func TestRingBufSize(t *testing.T) {
	Require(t)
	page := os.Getpagesize()
	for _, bad := range []int{0, page / 2, 3 * page} {
		_, err := NewRingBuf(bad)
		require.ErrorIs(t, err, unix.EINVAL, "size %d", bad)
	}
	m, err := NewRingBuf(4 * page)
	require.NoError(t, err)
	require.NoError(t, m.Close())
}

func TestParseCPURange(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-3,8-11": 12, "0,2,5": 6} {
		got, err := parseCPURange(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "a", "0-", "-1", "0,,1", "3-1", "1-x"} {
		_, err := parseCPURange(bad)
		require.ErrorIs(t, err, unix.EINVAL, "%q", bad)
	}
	n, err := PossibleCPUs()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, 1)
}
