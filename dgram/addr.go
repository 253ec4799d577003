package dgram

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket addresses live in preallocated unix.RawSockaddrInet6 storage,
// large enough for either family; an AF_INET address uses its first 16
// bytes as a RawSockaddrInet4.

const (
	sizeofInet4 = uint32(unix.SizeofSockaddrInet4)
	sizeofInet6 = uint32(unix.SizeofSockaddrInet6)
)

// putSockaddr writes to into sa for a socket of the given family and
// returns its length. An IPv4 destination on an IPv6 socket becomes the
// IPv4-mapped address (::ffff:a.b.c.d), as Go's net does; an IPv6 one on an
// IPv4 socket is EAFNOSUPPORT.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, to netip.AddrPort) (uint32, error) {
	addr := to.Addr()
	if !addr.IsValid() {
		return 0, unix.EINVAL
	}
	if family == unix.AF_INET {
		if addr.Is4In6() {
			addr = addr.Unmap()
		}
		if !addr.Is4() {
			return 0, unix.EAFNOSUPPORT
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], to.Port())
		sa4.Addr = addr.As4()
		sa4.Zero = [8]uint8{}
		return sizeofInet4, nil
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
	sa.Flowinfo = 0
	sa.Addr = addr.As16() // an IPv4 address comes out IPv4-mapped
	sa.Scope_id = 0
	if z := addr.Zone(); z != "" {
		sa.Scope_id = zoneIndex(z)
	}
	return sizeofInet6, nil
}

// zoneIndex turns an IPv6 zone (an interface name or number) into a scope
// id; an unknown name is 0, as in Go's net.
func zoneIndex(zone string) uint32 {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// getSockaddr decodes the namelen bytes the kernel wrote into sa. A
// length that does not fit the family gives the zero AddrPort.
func getSockaddr(sa *unix.RawSockaddrInet6, namelen uint32) netip.AddrPort {
	switch {
	case sa.Family == unix.AF_INET && namelen >= sizeofInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case sa.Family == unix.AF_INET6 && namelen >= sizeofInet6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		addr := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			// Link-local peers only; a numeric zone, as the name
			// lookup would cost a syscall per packet.
			addr = addr.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(addr, port)
	}
	return netip.AddrPort{}
}

// resolve parses a listen address: host:port with the host an IP literal,
// empty (every address) or "localhost"; names are not resolved, as that
// would block the loop. It returns the address family to open and whether
// the socket must be IPv6-only, following Go's net: udp4 is AF_INET, udp6
// AF_INET6 and IPv6-only, udp is AF_INET for an IPv4 host and a dual-stack
// AF_INET6 socket otherwise.
func resolve(network, address string) (addr netip.AddrPort, family int, v6only bool, err error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return addr, 0, false, fmt.Errorf("unknown network %q: %w", network, unix.EINVAL)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return addr, 0, false, fmt.Errorf("%w: %w", err, unix.EINVAL)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return addr, 0, false, fmt.Errorf("bad port %q: %w", portStr, unix.EINVAL)
	}
	var ip netip.Addr
	switch host {
	case "":
	case "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if network == "udp6" {
			ip = netip.IPv6Loopback()
		}
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return addr, 0, false, fmt.Errorf("host %q is not an IP address: %w", host, unix.EINVAL)
		}
	}
	switch network {
	case "udp4":
		if ip.Is4In6() {
			ip = ip.Unmap()
		}
		if ip.IsValid() && !ip.Is4() {
			return addr, 0, false, fmt.Errorf("%s is not an IPv4 address: %w", ip, unix.EAFNOSUPPORT)
		}
		if !ip.IsValid() {
			ip = netip.IPv4Unspecified()
		}
		family = unix.AF_INET
	case "udp6":
		if ip.Is4() {
			return addr, 0, false, fmt.Errorf("%s is not an IPv6 address: %w", ip, unix.EAFNOSUPPORT)
		}
		if !ip.IsValid() {
			ip = netip.IPv6Unspecified()
		}
		family, v6only = unix.AF_INET6, true
	default:
		switch {
		case ip.Is4():
			family = unix.AF_INET
		case ip.IsValid():
			family = unix.AF_INET6
		default:
			ip, family = netip.IPv6Unspecified(), unix.AF_INET6
		}
	}
	return netip.AddrPortFrom(ip, uint16(port)), family, v6only, nil
}
