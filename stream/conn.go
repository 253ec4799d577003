package stream

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
)

// maxReadsPerEvent bounds the reads one readiness event makes, as libuv's
// uv__read does, so that one busy connection cannot starve the others.
const maxReadsPerEvent = 32

// maxWritesPerEvent bounds the sendmsg calls one writability event makes.
const maxWritesPerEvent = 16

// maxSpare is the largest copy buffer a connection keeps for reuse once
// the kernel has taken its bytes, and the largest input buffer it keeps
// once its input is consumed.
const maxSpare = 256 << 10

// Conn is a TCP or Unix stream connection on a loop. It is used from the
// loop's goroutine only, except AsyncWrite.
//
// An idle connection is what a server holds most of, so Conn keeps only
// what every connection uses while it waits for input (see many_test.go
// for the bytes it costs). The rest is behind pointers allocated at first
// need: rare (the write queue beyond an empty one, kept input, Shutdown,
// OnEnd and OnDrain, a Dial in progress, a close's error and callback),
// idle (SetIdleTimeout) and async (AsyncWrite). The options, which every
// connection of a listener shares, are one pointer; the peer's address is
// kept as bytes, not as a unix.Sockaddr on the heap.
type Conn struct {
	ls  *loopShared // and through it the loop
	w   *loop.Watcher
	cfg *config // shared with the listener, Dial or Open that made it

	onData  func(c *Conn, data []byte) int
	onClose func(c *Conn, err error)

	x     *connRare                  // nil until needed
	idle  *idleState                 // nil until SetIdleTimeout
	async atomic.Pointer[asyncQueue] // nil until AsyncWrite or the close

	// queued is the write queue's size in bytes. The loop alone changes
	// it; AsyncWrite reads it from other goroutines for its bound.
	queued atomic.Int64

	release func() // a group listener's count of the loop's connections, dropped once

	raddr [16]byte // the peer's IP (the first 4 bytes for IPv4)
	fd    int32
	rport uint16
	rfam  uint8 // peerAddr.fam

	tcp       bool
	paused    bool
	eof       bool
	redeliver bool // a delivery of kept input is posted
	closing   bool
	finished  bool
	closeKind uint8 // closeNil, closeEOF, or closeErr (the error is x.closeErr)
}

// connRare is the part of a connection that most idle connections never
// need.
type connRare struct {
	writeQueue

	onEnd   func(c *Conn)
	onDrain func(c *Conn)

	in []byte // unconsumed input, when there is some

	dial *dialState // while connecting

	closeErr error // with closeKind closeErr
	closeCb  func()

	redeliverFn func()

	remoteName string // a Unix peer's name
	remoteZone uint32 // an IPv6 peer's scope (interface index)
}

// The values of Conn.closeKind: the common ends cost no connRare.
const (
	closeNil uint8 = iota
	closeEOF
	closeErr
)

// more returns the connection's rare part, allocating it at first need.
func (c *Conn) more() *connRare {
	if c.x == nil {
		c.x = new(connRare)
	}
	return c.x
}

// l returns the connection's loop.
func (c *Conn) l() *loop.Loop { return c.ls.l }

// setRemote stores the peer's address; a zone or a Unix name, which few
// peers have, goes to the rare part.
func (c *Conn) setRemote(p peerAddr) {
	c.raddr, c.rport, c.rfam = p.ip, p.port, p.fam
	if p.zone != 0 {
		c.more().remoteZone = p.zone
	}
	if p.name != "" {
		c.more().remoteName = p.name
	}
}

// remote rebuilds the peer's address, nil if there is none.
func (c *Conn) remote() unix.Sockaddr {
	switch c.rfam {
	case peerInet4:
		return &unix.SockaddrInet4{Port: int(c.rport), Addr: [4]byte(c.raddr[:4])}
	case peerInet6:
		sa := &unix.SockaddrInet6{Port: int(c.rport), Addr: c.raddr}
		if c.x != nil {
			sa.ZoneId = c.x.remoteZone
		}
		return sa
	case peerUnix:
		sa := &unix.SockaddrUnix{}
		if c.x != nil {
			sa.Name = c.x.remoteName
		}
		return sa
	case peerUnixUnnamed:
		return &unix.SockaddrUnix{Name: unnamedUnix}
	}
	return nil
}

// closeError is the error OnClose gets.
func (c *Conn) closeError() error {
	switch c.closeKind {
	case closeEOF:
		return io.EOF
	case closeErr:
		return c.x.closeErr
	}
	return nil
}

// dialing reports whether the connection is still connecting.
func (c *Conn) dialing() bool { return c.x != nil && c.x.dial != nil }

// kept returns the unconsumed input.
func (c *Conn) kept() []byte {
	if c.x == nil {
		return nil
	}
	return c.x.in
}

// newConn wraps a connected (or connecting, with d set) non-blocking
// socket, which it owns from then on, even when it fails. cfg is kept, not
// copied: it must not change afterwards.
func newConn(l *loop.Loop, fd int, cfg *config, remote peerAddr, d *dialState) (*Conn, error) {
	family, err := sockFamily(fd)
	if err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("getsockopt", err)
	}
	c := &Conn{
		fd:  int32(fd),
		tcp: family != unix.AF_UNIX,
		cfg: cfg,
	}
	c.setRemote(remote)
	if d != nil {
		c.more().dial = d
	}
	if c.tcp {
		if err := setNoDelay(fd, cfg.noDelay); err != nil {
			unix.Close(fd)
			return nil, err
		}
		if cfg.keepAlive != nil {
			if err := setKeepAlive(fd, *cfg.keepAlive); err != nil {
				unix.Close(fd)
				return nil, err
			}
		}
	}
	ev := poller.Readable
	if d != nil {
		ev = poller.Writable
	}
	w, err := l.Watch(fd, ev, c.onIO)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if c.ls, err = acquireShared(l); err != nil {
		w.Close(nil)
		unix.Close(fd)
		return nil, err
	}
	c.w = w
	w.SetCloseHook(c.watcherClosed)
	if cfg.idle > 0 {
		c.SetIdleTimeout(cfg.idle)
	}
	return c, nil
}

// Open adopts fd, a connected stream socket (TCP or Unix), which the
// connection owns from then on: Close closes it, and so does a failed Open.
// The socket is made non-blocking. opts are as for Dial.
func Open(l *loop.Loop, fd int, opts ...Option) (*Conn, error) {
	const op = "open"
	if l == nil {
		return nil, fmt.Errorf("stream: %s: nil loop: %w", op, unix.EINVAL)
	}
	if fd < 0 {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, unix.EBADF)
	}
	cfg, err := buildConfig(op, opts)
	if err != nil {
		return nil, err
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, os.NewSyscallError("getsockopt", err))
	}
	if typ != unix.SOCK_STREAM {
		return nil, fmt.Errorf("stream: %s fd %d: not a stream socket: %w", op, fd, unix.EINVAL)
	}
	family, err := sockFamily(fd)
	if err != nil {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, os.NewSyscallError("getsockopt", err))
	}
	if family != unix.AF_INET && family != unix.AF_INET6 && family != unix.AF_UNIX {
		return nil, fmt.Errorf("stream: %s fd %d: address family %d: %w", op, fd, family, unix.EAFNOSUPPORT)
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, os.NewSyscallError("getpeername", err))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, os.NewSyscallError("fcntl", err))
	}
	unix.CloseOnExec(fd)
	c, err := newConn(l, fd, &cfg, peerOf(peer), nil)
	if err != nil {
		return nil, fmt.Errorf("stream: %s fd %d: %w", op, fd, err)
	}
	c.updateInterest()
	return c, nil
}

// Loop returns the loop the connection runs on.
func (c *Conn) Loop() *loop.Loop { return c.ls.l }

// Fd returns the socket descriptor, or -1 once the connection is closing.
// It stays the connection's: do not close it.
func (c *Conn) Fd() int { return int(c.fd) }

// LocalAddr returns the local address: a *net.TCPAddr or *net.UnixAddr, nil
// once closing.
func (c *Conn) LocalAddr() net.Addr {
	if c.closing {
		return nil
	}
	sa, err := unix.Getsockname(int(c.fd))
	if err != nil {
		return nil
	}
	return toAddr(sa)
}

// RemoteAddr returns the peer's address, as it was when the connection was
// made: a *net.TCPAddr or *net.UnixAddr (whose Name is "@" for an unnamed
// Unix peer, as Go's net reports it). It answers once the connection is closed too (in OnClose,
// say): the address is kept, not asked of the descriptor.
func (c *Conn) RemoteAddr() net.Addr {
	sa := c.remote()
	if sa == nil {
		return nil
	}
	return toAddr(sa)
}

// SetNoDelay sets TCP_NODELAY (on by default). On a Unix socket it is an
// error wrapping EOPNOTSUPP.
func (c *Conn) SetNoDelay(on bool) error {
	if c.closing {
		return errClosed("set no delay")
	}
	if !c.tcp {
		return fmt.Errorf("stream: set no delay: unix socket: %w", unix.EOPNOTSUPP)
	}
	if err := setNoDelay(int(c.fd), on); err != nil {
		return fmt.Errorf("stream: set no delay: %w", err)
	}
	return nil
}

// SetKeepAlive turns TCP keepalive on, as WithKeepAlive does.
func (c *Conn) SetKeepAlive(idle, interval time.Duration, count int) error {
	if c.closing {
		return errClosed("set keepalive")
	}
	if err := checkKeepAlive(idle, interval, count); err != nil {
		return fmt.Errorf("stream: set %w", err)
	}
	if !c.tcp {
		return fmt.Errorf("stream: set keepalive: unix socket: %w", unix.EOPNOTSUPP)
	}
	if err := setKeepAlive(int(c.fd), keepAlive{idle, interval, count}); err != nil {
		return fmt.Errorf("stream: set keepalive: %w", err)
	}
	return nil
}

// OnData sets the function that receives input and starts reading; nil
// stops reading. data is the connection's unconsumed input followed by what
// just arrived; fn returns how many bytes of it, from the front, it
// consumed. The rest stays and comes back at the start of data in the next
// call, with the next arrival appended, so a parser that consumes whole
// frames only never copies a partial frame itself. data is valid during the
// call only. Kept input past WithMaxBuffered ends the connection with an
// error wrapping unix.ENOBUFS; a return outside 0..len(data) ends it with
// one wrapping unix.EINVAL.
func (c *Conn) OnData(fn func(c *Conn, data []byte) (consumed int)) {
	c.onData = fn
	c.updateInterest()
}

// OnEnd sets the function called when the peer has finished sending. With
// it set, the connection stays open and writable until Shutdown or Close;
// without it, a connection whose peer ended closes itself (OnClose gets
// io.EOF) once its write queue is flushed.
func (c *Conn) OnEnd(fn func(c *Conn)) {
	if fn != nil || c.x != nil {
		c.more().onEnd = fn
	}
}

// OnClose sets the function that runs exactly once when the connection is
// closed, whatever closed it: err is nil after Close or CloseReset, io.EOF
// after the peer ended (with no OnEnd), an error wrapping
// os.ErrDeadlineExceeded after an idle timeout, one wrapping os.ErrClosed
// when the loop closed the connection's handles (Walk, Shutdown, Close), and
// the wrapped errno of a failed read or write otherwise.
func (c *Conn) OnClose(fn func(c *Conn, err error)) { c.onClose = fn }

// PauseRead stops reading until ResumeRead; input stays in the kernel,
// which in time makes the peer's writes block (TCP flow control).
func (c *Conn) PauseRead() {
	c.paused = true
	c.updateInterest()
}

// ResumeRead resumes reading after PauseRead. Input kept unconsumed is
// delivered again soon (from a posted task, not inside the call), even if
// nothing new arrives.
func (c *Conn) ResumeRead() {
	c.paused = false
	c.updateInterest()
	if len(c.kept()) > 0 && c.reading() && !c.redeliver {
		x := c.x
		if x.redeliverFn == nil {
			x.redeliverFn = c.redeliverTask
		}
		c.redeliver = true
		if err := c.ls.l.Post(x.redeliverFn); err != nil {
			c.redeliver = false
		}
	}
}

// Close closes the connection now: queued writes are dropped, their done
// callbacks get an error wrapping os.ErrClosed, then OnClose runs (with a
// nil error), then cb (if not nil), all on the loop's next close phase.
// Closing a connection already closing does nothing.
func (c *Conn) Close(cb func()) { c.endWith(nil, cb, false) }

// CloseReset closes the connection as Close does, with an RST instead of
// a FIN (SO_LINGER 0): the peer's reads fail with ECONNRESET.
func (c *Conn) CloseReset(cb func()) { c.endWith(nil, cb, true) }

// IsActive reports whether the connection is reading, writing or
// connecting.
func (c *Conn) IsActive() bool { return !c.closing && c.w.IsActive() }

// IsClosing reports whether the connection is closing or closed.
func (c *Conn) IsClosing() bool { return c.closing }

// Ref makes an active connection keep the loop alive (the default).
func (c *Conn) Ref() { c.w.Ref() }

// Unref stops the connection from keeping the loop alive.
func (c *Conn) Unref() { c.w.Unref() }

// HasRef reports whether the connection is referenced.
func (c *Conn) HasRef() bool { return c.w.HasRef() }

func (c *Conn) reading() bool {
	return c.onData != nil && !c.paused && !c.eof && !c.closing && !c.dialing()
}

// updateInterest asks the loop for what the connection needs now. A
// connection that needs nothing stops its watcher, so that a hung-up socket
// it is not reading cannot keep reporting readiness.
func (c *Conn) updateInterest() {
	if c.closing {
		return
	}
	var want poller.Events
	switch {
	case c.dialing():
		want = poller.Writable
	default:
		if c.reading() {
			want |= poller.Readable
		}
		if c.queuedLen() > 0 {
			want |= poller.Writable
		}
	}
	if want == 0 {
		c.w.Stop()
		return
	}
	if c.w.Events() != want {
		if err := c.w.Modify(want); err != nil {
			c.end(fmt.Errorf("stream: watch: %w", err))
			return
		}
	}
	if !c.w.IsActive() {
		if err := c.w.Start(); err != nil {
			c.end(fmt.Errorf("stream: watch: %w", err))
		}
	}
}

func (c *Conn) onIO(ev poller.Events) {
	if c.closing {
		return
	}
	if c.dialing() {
		c.connected()
		return
	}
	if c.queuedLen() > 0 && ev&(poller.Writable|poller.Error|poller.Hangup) != 0 {
		c.flush()
	}
	if c.reading() {
		c.readSome()
	}
}

// readSome reads until the kernel has no more, for at most
// maxReadsPerEvent reads. Input with nothing kept goes into the loop's
// shared buffer; a connection with kept input reads after it, in its own.
func (c *Conn) readSome() {
	rb := c.cfg.readBuffer
	for range maxReadsPerEvent {
		if !c.reading() {
			return
		}
		x := c.x
		own := x != nil && len(x.in) > 0
		var buf []byte
		if own {
			kept := len(x.in)
			if need := kept + rb; cap(x.in) < need {
				nb := make([]byte, kept, max(need, 2*cap(x.in)))
				copy(nb, x.in)
				x.in = nb
			}
			buf = x.in[kept : kept+rb]
		} else {
			buf = c.ls.readBuf(rb)
		}
		n, err := read(int(c.fd), buf)
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			c.end(fmt.Errorf("stream: read: %w", err))
			return
		}
		if n == 0 {
			c.gotEOF()
			return
		}
		c.touch()
		data := buf[:n]
		if own {
			data = x.in[:len(x.in)+n]
		}
		if !c.deliver(data, own) || n < len(buf) {
			return
		}
	}
}

// deliver hands data to OnData and keeps what it left. own says data is
// the kept input's memory. It reports whether the connection can go on
// reading.
func (c *Conn) deliver(data []byte, own bool) bool {
	consumed := c.onData(c, data)
	if c.closing {
		return false
	}
	if consumed < 0 || consumed > len(data) {
		c.end(fmt.Errorf("stream: read: OnData consumed %d of %d bytes: %w", consumed, len(data), unix.EINVAL))
		return false
	}
	rest := len(data) - consumed
	switch {
	case rest == 0:
		if own {
			if x := c.x; cap(x.in) > maxSpare {
				x.in = nil
			} else {
				x.in = x.in[:0]
			}
		}
	case rest > c.cfg.maxBuffered:
		c.end(fmt.Errorf("stream: read: %d bytes unconsumed, more than WithMaxBuffered(%d): %w", rest, c.cfg.maxBuffered, unix.ENOBUFS))
		return false
	case own:
		x := c.x
		x.in = x.in[:rest]
		copy(x.in, data[consumed:])
	default:
		x := c.more()
		if cap(x.in) < rest {
			x.in = make([]byte, 0, rest+c.cfg.readBuffer)
		}
		x.in = append(x.in[:0], data[consumed:]...)
	}
	return true
}

func (c *Conn) redeliverTask() {
	c.redeliver = false
	if in := c.kept(); len(in) > 0 && c.reading() {
		c.deliver(in, true)
	}
}

func (c *Conn) gotEOF() {
	c.eof = true
	c.updateInterest()
	if x := c.x; x != nil && x.onEnd != nil {
		x.onEnd(c)
		return
	}
	if c.queuedLen() == 0 {
		c.end(io.EOF)
		return
	}
	c.x.endAfterFlush = true // the queue is not empty: c.x is there
}

// end closes the connection because of err.
func (c *Conn) end(err error) { c.endWith(err, nil, false) }

// endWith starts closing: the descriptor is closed now; the callbacks run
// from the watcher's close hook, in the loop's close phase.
func (c *Conn) endWith(err error, cb func(), reset bool) {
	if c.closing {
		return
	}
	c.closing = true
	switch err {
	case nil:
		c.closeKind = closeNil
	case io.EOF:
		c.closeKind = closeEOF
	default:
		c.closeKind = closeErr
		c.more().closeErr = err
	}
	if cb != nil {
		c.more().closeCb = cb
	}
	if c.idle != nil {
		c.idle.t.Close(nil)
	}
	// From now on AsyncWrite finds a closed queue, the connection's own
	// or, if it never had one, the shared closed one.
	if !c.async.CompareAndSwap(nil, closedAsync) {
		c.async.Load().close()
	}
	c.w.Close(nil) // its hook finishes the connection
	if reset {
		_ = setLingerZero(int(c.fd))
	}
	_ = unix.Close(int(c.fd))
	c.fd = -1
}

// watcherClosed is the watcher's close hook: it runs whoever closed the
// watcher, so a watcher closed by the loop (Walk, Shutdown, Close) ends the
// connection as Close would.
func (c *Conn) watcherClosed() {
	if !c.closing {
		c.end(fmt.Errorf("stream: connection closed by its loop: %w", os.ErrClosed))
	}
	c.finish()
}

// finish runs the callbacks of a closed connection, once.
func (c *Conn) finish() {
	if c.finished {
		return
	}
	c.finished = true
	c.runCompleted()
	werr := c.closeError()
	if werr == nil || werr == io.EOF {
		werr = errClosed("write")
	}
	c.failQueued(werr)
	c.failAsync(werr)
	if x := c.x; x != nil && x.shutCb != nil {
		cb := x.shutCb
		x.shutCb = nil
		cb(werr)
	}
	c.runCompleted()
	releaseShared(c.ls.l)
	if fn := c.release; fn != nil {
		c.release = nil
		fn()
	}
	x := c.x
	if x == nil {
		if fn := c.onClose; fn != nil {
			fn(c, c.closeError())
		}
		return
	}
	x.in = nil
	if d := x.dial; d != nil {
		x.dial = nil
		d.failed()
		return
	}
	if fn := c.onClose; fn != nil {
		fn(c, c.closeError())
	}
	if cb := x.closeCb; cb != nil {
		x.closeCb = nil
		cb()
	}
}

func errClosed(op string) error {
	return fmt.Errorf("stream: %s: connection closed: %w", op, os.ErrClosed)
}

// asyncQueue holds AsyncWrite's buffers until the loop takes them. A
// connection gets its own at its first AsyncWrite.
type asyncQueue struct {
	mu      sync.Mutex
	items   []asyncReq
	spare   []asyncReq
	pending int  // bytes in items
	posted  bool // a flush task is queued
	closed  bool
	flushFn func()
}

// closedAsync is the queue of every connection that closed before its
// first AsyncWrite: it is closed, and nothing ever changes it.
var closedAsync = &asyncQueue{closed: true}

type asyncReq struct {
	p    []byte
	done func(error)
}

func (a *asyncQueue) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
}
