// Package dgram puts UDP sockets on a loop, with the kernel's batched
// calls: datagrams are read with recvmmsg, up to WithReadBatch of them per
// call into a receive buffer the Conn owns, and a send queue is flushed
// with sendmmsg.
//
// It is built on the loop's public API only (a Watcher on the socket and
// its close hook), as user code would be.
//
// # Receiving
//
// The packet callback gets data pointing into the Conn's receive buffer,
// valid only during the call: copy what must outlive it. Delivering a
// datagram allocates nothing. The buffer has one slot of WithMaxPacket
// bytes per message of a batch: 2 MiB with the defaults (32 slots of 64
// KiB, so that no datagram is truncated); a service that knows its
// datagrams are small sets a smaller maximum. A datagram longer than WithMaxPacket is not
// delivered; it is counted in Stats.Truncated. The socket has SO_RXQ_OVFL
// set, so the kernel reports how many datagrams it dropped for lack of room
// in the receive buffer; Stats.Dropped adds them up. The kernel attaches
// its drop counter to the next datagram it queues, so drops become visible
// once a later datagram has been read. One readiness event reads at most a
// few batches, so that a flooded socket cannot starve the loop's other
// handles.
//
// # Sending
//
// WriteTo sends at once when the send queue is empty and the kernel takes
// the datagram, allocating nothing. When the kernel's send buffer is full
// (EAGAIN), the datagram is copied into the send queue, bounded by
// WithMaxQueued, and the Conn flushes it with sendmmsg as the socket
// becomes writable, then runs OnDrain. Past the bound WriteTo fails with an
// error wrapping unix.ENOBUFS and queues nothing: UDP has no
// back-pressure of its own, so the caller decides what to shed.
//
// # Addresses
//
// Addresses are netip.AddrPort. Sockets follow Go's net: "udp4" is IPv4,
// "udp6" IPv6-only, and "udp" IPv4 for an IPv4 host and a dual-stack IPv6
// socket otherwise, which sees IPv4 peers as IPv4-mapped addresses and
// sends to an IPv4 address through its mapped form.
//
// # Errors
//
// Errors wrap the kernel's errno (errors.Is(err, unix.ENOBUFS), ...), or
// os.ErrClosed after Close; bad arguments wrap unix.EINVAL. A message
// names the package and the operation once:
// "dgram: write to 127.0.0.1:9: ...".
package dgram
