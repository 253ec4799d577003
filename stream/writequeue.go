package stream

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// The write queue follows libuv's uv_stream_t: a write goes to the kernel at
// once when nothing is queued; what the kernel does not take waits, in
// order, in a FIFO of requests that the connection sends, several
// requests per sendmsg (up to maxIov buffers), whenever the socket is
// writable. Write copies what waits (appending to the previous copy when it
// has room); Writev and AsyncWrite queue the caller's buffers themselves.
// A request's done callback runs once all its bytes were taken by the
// kernel, or when the connection closes first, never inside the call that
// queued it: completions wait in a list run from the loop (a posted task,
// or the end of the writability callback).

// wreq is one queued request: buf, or the buffers bufs with bufs[0]
// started at off.
type wreq struct {
	buf   []byte
	bufs  [][]byte
	off   int
	size  int // bytes not yet taken by the kernel
	done  func(error)
	base  []byte // the whole copy buffer of a Write, for reuse
	owned bool
}

type completion struct {
	done func(error)
	err  error
}

// writeQueue is the queue's state beyond its size (Conn.queued), in the
// connection's rare part: a connection whose writes the kernel always
// takes whole never needs it.
type writeQueue struct {
	q              []wreq
	head           int
	spare          []byte
	completed      []completion
	complPosted    bool
	completing     bool
	shutReq        bool // Shutdown called
	shutDone       bool // FIN sent
	shutCb         func(error)
	endAfterFlush  bool // the peer ended and there is no OnEnd
	runCompletedFn func()
}

func (c *Conn) queuedLen() int {
	if x := c.x; x != nil {
		return len(x.q) - x.head
	}
	return 0
}

// shutReq reports whether Shutdown was called.
func (c *Conn) shutReq() bool { return c.x != nil && c.x.shutReq }

// Buffered returns the bytes queued and not yet taken by the kernel.
func (c *Conn) Buffered() int { return int(c.queued.Load()) }

// Writable reports whether the queued output is at most the high-water mark
// (WithHighWater) and the connection still accepts writes.
func (c *Conn) Writable() bool {
	return !c.closing && !c.shutReq() && c.Buffered() <= c.cfg.highWater
}

// OnDrain sets the function called each time the write queue becomes empty
// (after the done callbacks of the last requests).
func (c *Conn) OnDrain(fn func(c *Conn)) {
	if fn != nil || c.x != nil {
		c.more().onDrain = fn
	}
}

func (c *Conn) addQueued(n int) { c.queued.Add(int64(n)) }

func (c *Conn) writeCheck(op string, n int) error {
	switch q := c.Buffered(); {
	case c.closing:
		return errClosed(op)
	case c.shutReq():
		return fmt.Errorf("stream: %s: after Shutdown: %w", op, unix.EPIPE)
	case q+n > c.cfg.maxQueued:
		return fmt.Errorf("stream: %s: %d bytes on top of %d queued pass WithMaxQueued(%d): %w",
			op, n, q, c.cfg.maxQueued, unix.ENOBUFS)
	}
	return nil
}

// Write writes p: at once when nothing is queued, and whatever the kernel
// did not take is copied into the write queue, so it never blocks and p
// is free again when it returns. It returns len(p) unless it fails: after
// Close or Shutdown, past WithMaxQueued (unix.ENOBUFS; nothing is written
// or queued), or when the kernel refuses the write, which also ends the
// connection (OnClose gets the same error). A Write the kernel takes whole
// allocates nothing.
func (c *Conn) Write(p []byte) (int, error) {
	if err := c.writeCheck("write", len(p)); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if c.queuedLen() == 0 {
		var err error
		n, err = send(int(c.fd), p)
		if err != nil && err != unix.EAGAIN {
			e := fmt.Errorf("stream: write: %w", err)
			c.end(e)
			return 0, e
		}
		if n > 0 {
			c.touch()
		}
		if n == len(p) {
			return n, nil
		}
	}
	c.enqueueCopy(p[n:])
	c.updateInterest()
	return len(p), nil
}

// copyChunk is the smallest copy buffer Write allocates: later small
// writes append to it while it has room.
const copyChunk = 32 << 10

// enqueueCopy queues a copy of p, in the tail copy buffer if it has room.
func (c *Conn) enqueueCopy(p []byte) {
	x := c.more()
	if k := len(x.q); k > x.head {
		t := &x.q[k-1]
		if t.owned && t.done == nil && cap(t.buf)-len(t.buf) >= len(p) {
			t.buf = append(t.buf, p...)
			t.size += len(p)
			c.addQueued(len(p))
			return
		}
	}
	var b []byte
	if cap(x.spare) >= len(p) {
		b, x.spare = x.spare[:0], nil
	} else {
		b = make([]byte, 0, max(len(p), copyChunk))
	}
	b = append(b, p...)
	x.q = append(x.q, wreq{buf: b, size: len(p), base: b, owned: true})
	c.addQueued(len(p))
}

// Writev queues bufs without copying them: the buffers (and the slice
// holding them) must stay untouched until done runs, once, with nil after
// the kernel has taken every byte, or with the error that ended the
// connection first (wrapping os.ErrClosed after Close). done never runs
// inside Writev; it may be nil. An error returned by Writev (closed,
// after Shutdown, past WithMaxQueued with unix.ENOBUFS, or a kernel error,
// which also ends the connection) means nothing was queued and done will
// not run.
func (c *Conn) Writev(bufs [][]byte, done func(err error)) error {
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	if err := c.writeCheck("writev", total); err != nil {
		return err
	}
	r := wreq{bufs: bufs, size: total, done: done}
	if c.queuedLen() == 0 && total > 0 {
		iov := c.ls.iovs()
		iov = appendIov(iov, &r)
		n, err := sendv(int(c.fd), iov)
		if err != nil && err != unix.EAGAIN {
			e := fmt.Errorf("stream: writev: %w", err)
			c.end(e)
			return e
		}
		if n > 0 {
			c.touch()
			r.consume(n)
		}
	}
	if r.size == 0 {
		if done != nil {
			x := c.more()
			x.completed = append(x.completed, completion{done, nil})
			c.postCompleted()
		}
		return nil
	}
	x := c.more()
	x.q = append(x.q, r)
	c.addQueued(r.size)
	c.updateInterest()
	return nil
}

// appendIov adds r's remaining buffers to iov, up to maxIov entries.
func appendIov(iov []unix.Iovec, r *wreq) []unix.Iovec {
	add := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		if len(iov) == maxIov {
			return false
		}
		v := unix.Iovec{Base: (*byte)(unsafe.Pointer(&b[0]))}
		v.SetLen(len(b))
		iov = append(iov, v)
		return true
	}
	if r.bufs == nil {
		add(r.buf)
		return iov
	}
	for i, b := range r.bufs {
		if i == 0 {
			b = b[r.off:]
		}
		if !add(b) {
			break
		}
	}
	return iov
}

// consume marks n of r's bytes as taken.
func (r *wreq) consume(n int) {
	r.size -= n
	if r.bufs == nil {
		r.buf = r.buf[n:]
		return
	}
	for n > 0 {
		left := len(r.bufs[0]) - r.off
		if n < left {
			r.off += n
			return
		}
		n -= left
		r.bufs = r.bufs[1:]
		r.off = 0
	}
	for len(r.bufs) > 0 && len(r.bufs[0]) == r.off {
		r.bufs = r.bufs[1:]
		r.off = 0
	}
}

// advance removes n bytes taken by the kernel from the front of the queue.
// The queue is not empty, so c.x is there.
func (c *Conn) advance(n int) {
	c.addQueued(-n)
	x := c.x
	for n > 0 && x.head < len(x.q) {
		r := &x.q[x.head]
		if n < r.size {
			r.consume(n)
			return
		}
		n -= r.size
		if r.done != nil {
			x.completed = append(x.completed, completion{r.done, nil})
		}
		if r.owned && cap(r.base) <= maxSpare && cap(r.base) > cap(x.spare) {
			x.spare = r.base[:0]
		}
		x.q[x.head] = wreq{}
		x.head++
	}
	switch {
	case x.head == len(x.q):
		x.q = x.q[:0]
		x.head = 0
		x.spare = nil // an idle connection keeps no copy buffer
	case x.head >= 64 && x.head >= len(x.q)/2:
		// A queue that never empties would otherwise grow behind its
		// head for ever.
		k := copy(x.q, x.q[x.head:])
		clear(x.q[k:])
		x.q = x.q[:k]
		x.head = 0
	}
}

// flush sends queued requests while the kernel takes them.
func (c *Conn) flush() {
	had := c.queuedLen() > 0
	for range maxWritesPerEvent {
		if c.queuedLen() == 0 {
			break
		}
		x := c.x
		iov := c.ls.iovs()
		for i := x.head; i < len(x.q) && len(iov) < maxIov; i++ {
			iov = appendIov(iov, &x.q[i])
		}
		total := 0
		for _, v := range iov {
			total += int(v.Len)
		}
		n, err := sendv(int(c.fd), iov)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			c.end(fmt.Errorf("stream: write: %w", err))
			return
		}
		if n > 0 {
			c.touch()
		}
		c.advance(n)
		if n < total {
			break
		}
	}
	empty := had && c.queuedLen() == 0
	c.updateInterest()
	x := c.x // there since had was true
	if empty && x.shutReq && !x.shutDone {
		c.doShutdown()
	}
	c.runCompleted()
	if c.closing || !empty || c.queuedLen() > 0 {
		return
	}
	if x.endAfterFlush {
		c.end(io.EOF)
		return
	}
	if fn := x.onDrain; fn != nil {
		fn(c)
	}
}

// Shutdown half-closes the connection (a FIN, shutdown(SHUT_WR)) once the
// write queue has been flushed; reading goes on. cb (which may be nil) runs
// afterwards on the loop, never inside the call: with nil once the FIN is
// sent, or with the error that prevented it (wrapping os.ErrClosed if the
// connection closed first, unix.ENOTCONN for a second Shutdown). Writes
// after Shutdown fail with unix.EPIPE.
func (c *Conn) Shutdown(cb func(err error)) {
	var err error
	switch {
	case c.closing:
		err = errClosed("shutdown")
	case c.shutReq():
		err = fmt.Errorf("stream: shutdown: already shut down: %w", unix.ENOTCONN)
	}
	x := c.more()
	if err != nil {
		if cb != nil {
			x.completed = append(x.completed, completion{cb, err})
			c.postCompleted()
		}
		return
	}
	x.shutReq = true
	x.shutCb = cb
	if c.queuedLen() == 0 {
		c.doShutdown()
		c.postCompleted()
	}
}

func (c *Conn) doShutdown() {
	x := c.x // Shutdown made it
	x.shutDone = true
	var err error
	if e := unix.Shutdown(int(c.fd), unix.SHUT_WR); e != nil {
		err = fmt.Errorf("stream: shutdown: %w", e)
	}
	if cb := x.shutCb; cb != nil {
		x.shutCb = nil
		x.completed = append(x.completed, completion{cb, err})
	}
	if err != nil {
		c.end(err)
	}
}

// postCompleted makes the loop run the completions soon.
func (c *Conn) postCompleted() {
	x := c.x
	if x == nil || x.complPosted || len(x.completed) == 0 {
		return
	}
	if x.runCompletedFn == nil {
		x.runCompletedFn = c.runCompletedTask
	}
	x.complPosted = true
	if err := c.ls.l.Post(x.runCompletedFn); err != nil {
		// The loop is closed: there is no later to run them in.
		x.complPosted = false
		c.runCompleted()
	}
}

func (c *Conn) runCompletedTask() {
	c.x.complPosted = false
	c.runCompleted()
}

// runCompleted runs the done callbacks due, in order; those added by a
// callback run in the same pass.
func (c *Conn) runCompleted() {
	x := c.x
	if x == nil || x.completing {
		return
	}
	x.completing = true
	defer func() { x.completing = false }()
	for i := 0; i < len(x.completed); i++ {
		cm := x.completed[i]
		x.completed[i] = completion{}
		if cm.done != nil {
			cm.done(cm.err)
		}
	}
	x.completed = x.completed[:0]
}

// failQueued ends every queued request with err.
func (c *Conn) failQueued(err error) {
	x := c.x
	if x == nil {
		return // nothing was ever queued
	}
	for i := x.head; i < len(x.q); i++ {
		if d := x.q[i].done; d != nil {
			x.completed = append(x.completed, completion{d, err})
		}
		x.q[i] = wreq{}
	}
	x.q, x.head, x.spare = nil, 0, nil
	c.addQueued(-c.Buffered())
}

// AsyncWrite queues p for writing from any goroutine: the loop takes it
// soon (many AsyncWrites share one posted task), after the requests queued
// before it, and p's bytes go out contiguously, never interleaved with
// another write. p is not copied: it must stay untouched until done runs
// (with nil once the kernel has taken it all, or with the error that
// ended the connection first); with a nil done, p is the connection's for
// good.
//
// It is bounded as Write is: when the bytes already queued plus those
// waiting for the loop plus len(p) pass WithMaxQueued, AsyncWrite fails at
// once with an error wrapping unix.ENOBUFS and queues nothing; the check
// uses the queue size the loop last published, so when the loop finds
// less room than that when it takes p, p is not queued and done gets the
// ENOBUFS error. After Close, AsyncWrite returns an error wrapping
// os.ErrClosed. When AsyncWrite returns an error, done never runs.
func (c *Conn) AsyncWrite(p []byte, done func(err error)) error {
	a := c.async.Load()
	if a == nil {
		a = &asyncQueue{}
		a.flushFn = c.asyncFlush
		if !c.async.CompareAndSwap(nil, a) {
			a = c.async.Load() // another AsyncWrite's, or closedAsync
		}
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return errClosed("async write")
	}
	if q := c.Buffered() + a.pending; q+len(p) > c.cfg.maxQueued {
		a.mu.Unlock()
		return fmt.Errorf("stream: async write: %d bytes on top of %d queued pass WithMaxQueued(%d): %w",
			len(p), q, c.cfg.maxQueued, unix.ENOBUFS)
	}
	a.items = append(a.items, asyncReq{p, done})
	a.pending += len(p)
	post := !a.posted
	a.posted = true
	a.mu.Unlock()
	if post {
		// A Post refused for os.ErrClosed means the loop is closing: its
		// Close closes this connection too, and finish gives done its
		// error. One refused by a queue limit goes by the loop's shared
		// wakeup instead, which is never refused.
		if err := postFlush(c.ls.l, a.flushFn); err != nil && !errors.Is(err, os.ErrClosed) {
			c.ls.wakeFor(c)
		}
	}
	return nil
}

// postFlush posts AsyncWrite's flush; a variable so a test can refuse it.
var postFlush = (*loop.Loop).Post

// asyncFlush moves AsyncWrite's buffers into the write queue, on the loop.
// It runs only after an AsyncWrite queued something, so c.async is the
// connection's own queue.
func (c *Conn) asyncFlush() {
	a := c.async.Load()
	a.mu.Lock()
	items := a.items
	a.items, a.spare = a.spare[:0], nil
	a.pending = 0
	a.posted = false
	a.mu.Unlock()
	if len(items) > 0 {
		x := c.more()
		for i := range items {
			it := items[i]
			items[i] = asyncReq{}
			var err error
			if len(it.p) > 0 {
				err = c.writeCheck("async write", len(it.p))
			}
			switch {
			case err != nil:
				x.completed = append(x.completed, completion{it.done, err})
			case len(it.p) == 0:
				x.completed = append(x.completed, completion{it.done, nil})
			default:
				x.q = append(x.q, wreq{buf: it.p, size: len(it.p), done: it.done})
				c.addQueued(len(it.p))
			}
		}
	}
	a.mu.Lock()
	if a.spare == nil {
		a.spare = items[:0]
	}
	a.mu.Unlock()
	if !c.closing && c.queuedLen() > 0 {
		c.flush()
	}
	c.runCompleted()
}

// failAsync ends the buffers still waiting for the loop with err.
func (c *Conn) failAsync(err error) {
	a := c.async.Load()
	if a == nil || a == closedAsync {
		return
	}
	a.mu.Lock()
	items := a.items
	a.items, a.pending, a.closed = nil, 0, true
	a.mu.Unlock()
	if len(items) == 0 {
		return
	}
	x := c.more()
	for _, it := range items {
		x.completed = append(x.completed, completion{it.done, err})
	}
}
