package stream

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestConnSize keeps a Conn in the 112-byte size class: a server holds
// mostly idle connections, and Conn is most of what one costs on the Go
// heap (TestManyConnections logs the whole figure). What an idle
// connection does not use lives behind Conn.x, Conn.idle and Conn.async.
func TestConnSize(t *testing.T) {
	if got := unsafe.Sizeof(Conn{}); got > 112 {
		t.Fatalf("Conn is %d bytes, over the 112-byte size class", got)
	}
}

// Accepting a connection allocates nothing of its own: the peer's address
// is read from a buffer on the stack straight into a peerAddr.
func TestAcceptAllocs(t *testing.T) {
	lfd, err := newSocket(unix.AF_INET)
	require.NoError(t, err)
	defer unix.Close(lfd)
	require.NoError(t, unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, unix.Listen(lfd, 8))
	sa, err := unix.Getsockname(lfd)
	require.NoError(t, err)
	var peer peerAddr
	allocs := testing.AllocsPerRun(50, func() {
		cfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(cfd)
		if err := unix.Connect(cfd, sa); err != nil {
			t.Fatal(err)
		}
		fd, p, err := accept(lfd)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		peer = p
	})
	require.Zero(t, allocs, "allocations per accept")
	require.Equal(t, peerInet4, peer.fam)
	require.Equal(t, [4]byte{127, 0, 0, 1}, [4]byte(peer.ip[:4]))
	require.NotZero(t, peer.port)
}
