package poller_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

// TestDescriptorOutOfRange: the kernel reads an fd argument as a 32-bit int,
// so 1<<32+fd and -(1<<32)+fd would name fd itself. Each call refuses them
// with EBADF before the kernel sees them, and the real descriptor's
// registration is untouched.
func TestDescriptorOutOfRange(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	aliases := []int{1<<32 + a, -(1 << 32) + a, 1<<63 - 1, -1 << 63, 1 << 31}
	for _, fd := range aliases {
		require.ErrorIs(t, p.Add(fd, poller.Readable, 1), unix.EBADF, "Add(%d)", fd)
	}
	// Nothing was registered under a's number by the refused calls.
	require.NoError(t, p.Add(a, poller.Readable, 2))
	for _, fd := range aliases {
		require.ErrorIs(t, p.Modify(fd, poller.Writable, 3), unix.EBADF, "Modify(%d)", fd)
		require.ErrorIs(t, p.Delete(fd), unix.EBADF, "Delete(%d)", fd)
	}
	// a is still registered with its own token and events.
	evs := wait(t, p, 0)
	require.Empty(t, evs, "a is not readable and was not switched to Writable")
	require.ErrorIs(t, p.Add(a, poller.Readable, 4), unix.EEXIST)
	require.NoError(t, p.Delete(a))
}
