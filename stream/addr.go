package stream

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// target is a parsed address: a Unix socket path, a list of IP socket
// addresses, or a host name (and maybe a service name) to resolve first.
type target struct {
	family int // AF_UNIX, AF_INET or AF_INET6 (0: decided by the addresses)
	sas    []unix.Sockaddr
	host   string // to resolve
	port   string // to resolve when not numeric
	ipNet  string // "ip", "ip4" or "ip6"
	v6only bool   // listen: IPV6_V6ONLY
}

func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		return nil
	}
	return fmt.Errorf("unknown network %q: %w", network, unix.EINVAL)
}

// parseAddr parses address for network. listen says an empty host means
// every local address (for Dial: the local system, loopback).
func parseAddr(network, address string, listen bool) (*target, error) {
	if err := checkNetwork(network); err != nil {
		return nil, err
	}
	if network == "unix" {
		if address == "" || len(address) >= len(unix.RawSockaddrUnix{}.Path) {
			return nil, fmt.Errorf("bad unix socket path %q: %w", address, unix.EINVAL)
		}
		return &target{family: unix.AF_UNIX, sas: []unix.Sockaddr{&unix.SockaddrUnix{Name: address}}}, nil
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("bad address: %v: %w", err, unix.EINVAL)
	}
	t := &target{ipNet: map[string]string{"tcp": "ip", "tcp4": "ip4", "tcp6": "ip6"}[network]}
	port := -1
	if n, err := strconv.Atoi(portStr); err == nil {
		if n < 0 || n > 65535 {
			return nil, fmt.Errorf("bad port %q: %w", portStr, unix.EINVAL)
		}
		port = n
	} else if portStr == "" {
		return nil, fmt.Errorf("missing port in %q: %w", address, unix.EINVAL)
	}
	if host == "" {
		var ip netip.Addr
		switch {
		case listen && network == "tcp":
			ip = netip.IPv6Unspecified() // dual stack, as Go's net listens
		case listen && network == "tcp4":
			ip = netip.IPv4Unspecified()
		case listen:
			ip, t.v6only = netip.IPv6Unspecified(), true
		case network == "tcp6":
			ip = netip.IPv6Loopback()
		default:
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
		host = ip.String()
	}
	ip, err := netip.ParseAddr(host)
	if port < 0 || err != nil {
		t.host, t.port = host, portStr // resolved later
		return t, nil
	}
	sa, err := ipSockaddr(network, ip, port)
	if err != nil {
		return nil, err
	}
	if network == "tcp6" {
		t.v6only = true
	}
	t.family = familyOf(sa)
	t.sas = []unix.Sockaddr{sa}
	return t, nil
}

// ipSockaddr makes the socket address of ip:port for network, refusing an
// address of the wrong family.
func ipSockaddr(network string, ip netip.Addr, port int) (unix.Sockaddr, error) {
	if ip.Is4In6() && network != "tcp6" {
		ip = ip.Unmap()
	}
	switch {
	case ip.Is4() && network != "tcp6":
		return &unix.SockaddrInet4{Addr: ip.As4(), Port: port}, nil
	case ip.Is6() && network != "tcp4":
		sa := &unix.SockaddrInet6{Addr: ip.As16(), Port: port}
		if z := ip.Zone(); z != "" {
			if ifi, err := net.InterfaceByName(z); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else if n, err := strconv.Atoi(z); err == nil {
				sa.ZoneId = uint32(n)
			}
		}
		return sa, nil
	}
	return nil, fmt.Errorf("address %v is not for network %s: %w", ip, network, unix.EINVAL)
}

func familyOf(sa unix.Sockaddr) int {
	switch sa.(type) {
	case *unix.SockaddrInet4:
		return unix.AF_INET
	case *unix.SockaddrInet6:
		return unix.AF_INET6
	}
	return unix.AF_UNIX
}

// lookupNetIP resolves host names; a variable so a test can make it block.
var lookupNetIP = net.DefaultResolver.LookupNetIP

// resolve looks up t's host and service names (blocking: Listen calls it
// on the caller, Dial on the loop's worker pool).
func resolve(ctx context.Context, network string, t *target) ([]unix.Sockaddr, error) {
	port, err := net.DefaultResolver.LookupPort(ctx, network, t.port)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, unix.EINVAL)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(t.host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = lookupNetIP(ctx, t.ipNet, t.host); err != nil {
		return nil, fmt.Errorf("%w: %w", err, unix.EADDRNOTAVAIL)
	}
	var sas []unix.Sockaddr
	for _, ip := range ips {
		if sa, err := ipSockaddr(network, ip, port); err == nil {
			sas = append(sas, sa)
		}
	}
	if len(sas) == 0 {
		return nil, fmt.Errorf("no %s address for %q: %w", network, t.host, unix.EADDRNOTAVAIL)
	}
	return sas, nil
}

// peerAddr is a connection's peer address as the connection keeps it: no
// unix.Sockaddr on the heap for each connection.
type peerAddr struct {
	ip   [16]byte // the first 4 for IPv4
	port uint16
	fam  uint8  // peerNone, peerInet4, peerInet6, peerUnix or peerUnixUnnamed
	zone uint32 // IPv6 scope (interface index)
	name string // a named Unix peer's
}

// The families of peerAddr.fam.
const (
	peerNone uint8 = iota
	peerInet4
	peerInet6
	peerUnix
	peerUnixUnnamed // a Unix peer with no name, which Go's net calls "@"
)

// unnamedUnix is the name the kernel's address of an unnamed Unix peer
// reads as (the abstract namespace's '@' and an empty name).
const unnamedUnix = "@"

func peerOf(sa unix.Sockaddr) peerAddr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		p := peerAddr{fam: peerInet4, port: uint16(sa.Port)}
		copy(p.ip[:], sa.Addr[:])
		return p
	case *unix.SockaddrInet6:
		return peerAddr{fam: peerInet6, port: uint16(sa.Port), ip: sa.Addr, zone: sa.ZoneId}
	case *unix.SockaddrUnix:
		return unixPeer(sa.Name)
	}
	return peerAddr{}
}

func unixPeer(name string) peerAddr {
	if name == unnamedUnix {
		return peerAddr{fam: peerUnixUnnamed}
	}
	return peerAddr{fam: peerUnix, name: name}
}
