package poller

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Events is a set of readiness conditions and registration flags. The values
// are the kernel's EPOLL* bits, so no translation happens on the hot path.
type Events uint32

const (
	// Readable: data can be read (EPOLLIN).
	Readable Events = unix.EPOLLIN
	// Writable: data can be written (EPOLLOUT).
	Writable Events = unix.EPOLLOUT
	// Priority: urgent data or an exceptional condition (EPOLLPRI).
	Priority Events = unix.EPOLLPRI
	// ReadHangup: the peer shut down its writing half (EPOLLRDHUP).
	ReadHangup Events = unix.EPOLLRDHUP
	// Error: an error is pending on the descriptor (EPOLLERR). Always
	// reported; it need not be requested.
	Error Events = unix.EPOLLERR
	// Hangup: both directions are shut (EPOLLHUP). Always reported.
	Hangup Events = unix.EPOLLHUP
	// EdgeTriggered reports a condition once per change instead of while it
	// holds (EPOLLET).
	EdgeTriggered Events = unix.EPOLLET
	// OneShot disables the registration after one event until it is
	// re-armed with Modify (EPOLLONESHOT).
	OneShot Events = unix.EPOLLONESHOT
	// Exclusive wakes only one of several epoll instances waiting on the
	// same descriptor (EPOLLEXCLUSIVE). It is valid only with Add.
	Exclusive Events = unix.EPOLLEXCLUSIVE
)

var eventNames = []struct {
	bit  Events
	name string
}{
	{Readable, "Readable"},
	{Writable, "Writable"},
	{Priority, "Priority"},
	{ReadHangup, "ReadHangup"},
	{Error, "Error"},
	{Hangup, "Hangup"},
	{EdgeTriggered, "EdgeTriggered"},
	{OneShot, "OneShot"},
	{Exclusive, "Exclusive"},
}

// String lists the set bits by name, as in "Readable|Writable"; unknown bits
// are shown in hex and the empty set as "0".
func (e Events) String() string {
	if e == 0 {
		return "0"
	}
	var parts []string
	rest := e
	for _, n := range eventNames {
		if e&n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, "0x"+strconv.FormatUint(uint64(rest), 16))
	}
	return strings.Join(parts, "|")
}

// Event is one readiness report: the token given to Add or Modify and the
// conditions that hold.
type Event struct {
	Token  uint64
	Events Events
}
