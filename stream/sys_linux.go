package stream

import (
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The syscall shims. Sends go through send/sendmsg with MSG_NOSIGNAL, so a
// write to a peer that has gone away is EPIPE, never a SIGPIPE. They take
// and return plain errnos so the hot paths allocate nothing; callers wrap.

// maxIov bounds the buffers one sendmsg takes (the kernel's UIO_MAXIOV).
const maxIov = 1024

func errnoOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// send writes p with MSG_NOSIGNAL.
func send(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_NOSIGNAL, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, errnoOf(e)
		}
		return int(n), nil
	}
}

// sendv writes the buffers iov describes with MSG_NOSIGNAL.
func sendv(fd int, iov []unix.Iovec) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	var msg unix.Msghdr
	msg.Iov = &iov[0]
	msg.SetIovlen(len(iov))
	for {
		n, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_NOSIGNAL)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, errnoOf(e)
		}
		return int(n), nil
	}
}

// read reads into p; 0 with a nil error is the peer's end of stream.
func read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// newSocket opens a non-blocking, close-on-exec stream socket.
// socketSyscall is socket(2); a variable so that a test can play a host
// without IPv6.
var socketSyscall = unix.Socket

func newSocket(family int) (int, error) {
	fd, err := socketSyscall(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	return fd, nil
}

// accept takes one pending connection, non-blocking and close-on-exec,
// and its peer's address. It allocates nothing for an IP or unnamed Unix
// peer (unix.Accept4 puts its address buffer and the Sockaddr it makes on
// the heap, 144 bytes of garbage per connection).
func accept(fd int) (int, peerAddr, error) {
	for {
		var rsa unix.RawSockaddrAny
		n := uint32(unix.SizeofSockaddrAny)
		nfd, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)),
			uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return -1, peerAddr{}, e
		}
		return int(nfd), peerOfRaw(&rsa), nil
	}
}

// peerOfRaw reads a kernel socket address as unix.Accept4 would
// (anyToSockaddr), into a peerAddr.
func peerOfRaw(rsa *unix.RawSockaddrAny) peerAddr {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		pp := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := peerAddr{fam: peerInet4, port: netPort(&pp.Port)}
		copy(p.ip[:], pp.Addr[:])
		return p
	case unix.AF_INET6:
		pp := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return peerAddr{fam: peerInet6, port: netPort(&pp.Port), ip: pp.Addr, zone: pp.Scope_id}
	case unix.AF_UNIX:
		pp := (*unix.RawSockaddrUnix)(unsafe.Pointer(rsa))
		path := unsafe.Slice((*byte)(unsafe.Pointer(&pp.Path[0])), len(pp.Path))
		if path[0] == 0 {
			path[0] = '@' // an abstract (or no) name, shown as Go's net shows it
		}
		n := 0
		for n < len(path) && path[n] != 0 {
			n++
		}
		if n == 1 && path[0] == '@' {
			return peerAddr{fam: peerUnixUnnamed}
		}
		return unixPeer(string(path[:n]))
	}
	return peerAddr{}
}

// netPort reads a port stored in network byte order.
func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// openReserve opens the descriptor a listener gives up to shed connections
// when the process runs out (libuv's uv__emfile_trick reserve).
func openReserve() (int, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("open", err)
	}
	return fd, nil
}

func setNoDelay(fd int, on bool) error {
	v := 0
	if on {
		v = 1
	}
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, v))
}

func setKeepAlive(fd int, k keepAlive) error {
	secs := func(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(k.idle)); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(k.interval)); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return os.NewSyscallError("setsockopt", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, k.count))
}

// setLingerZero makes the next close send RST instead of FIN.
func setLingerZero(fd int) error {
	return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// soError reads and clears the socket's pending error.
func soError(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// toAddr converts a kernel address into the net.Addr Go's net package would
// return: *net.TCPAddr or *net.UnixAddr.
func toAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
	case *unix.SockaddrInet6:
		a := &net.TCPAddr{IP: net.IP(append([]byte(nil), sa.Addr[:]...)), Port: sa.Port}
		if sa.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(sa.ZoneId)); err == nil {
				a.Zone = ifi.Name
			}
		}
		return a
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

// sockFamily returns the address family of a socket.
func sockFamily(fd int) (int, error) {
	return unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
}
