package stream

import (
	"sync"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// loopShared is scratch memory that every connection of one loop shares,
// since the loop runs one callback at a time: the buffer reads land in
// (a connection keeps input of its own only while some of it is
// unconsumed, so ten thousand idle connections hold no read buffers) and
// the iovec array sendmsg takes.
//
// It also holds a wakeup for AsyncWrite when the loop refuses a Post (a
// queue limit, loop.WithQueueLimit): an unreferenced Async, whose sends
// are never refused, and the connections waiting for it.
type loopShared struct {
	l    *loop.Loop
	refs int
	buf  []byte
	iov  []unix.Iovec

	wake    *loop.Async
	mu      sync.Mutex
	waiting []*Conn
}

var shared struct {
	mu sync.Mutex
	m  map[*loop.Loop]*loopShared
}

// acquireShared returns l's scratch, counting one more connection on it.
// It runs on the loop.
func acquireShared(l *loop.Loop) (*loopShared, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.m == nil {
		shared.m = make(map[*loop.Loop]*loopShared)
	}
	s := shared.m[l]
	if s == nil {
		s = &loopShared{l: l}
		wake, err := l.NewAsync(s.flushWaiting)
		if err != nil {
			return nil, err
		}
		wake.Unref()
		s.wake = wake
		shared.m[l] = s
	}
	s.refs++
	return s, nil
}

// wakeFor makes the loop run c's AsyncWrite flush; any goroutine.
func (s *loopShared) wakeFor(c *Conn) {
	s.mu.Lock()
	s.waiting = append(s.waiting, c)
	s.mu.Unlock()
	// A closed wakeup means the loop closed its handles, this
	// connection's included: its close gives the writes their error.
	_ = s.wake.Send()
}

func (s *loopShared) flushWaiting() {
	s.mu.Lock()
	conns := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.asyncFlush()
	}
}

// releaseShared drops a connection's count; the last one frees the scratch.
func releaseShared(l *loop.Loop) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s := shared.m[l]; s != nil {
		if s.refs--; s.refs <= 0 {
			delete(shared.m, l)
			s.wake.Close(nil)
		}
	}
}

// readBuf returns n bytes of the shared read buffer.
func (s *loopShared) readBuf(n int) []byte {
	if len(s.buf) < n {
		s.buf = make([]byte, n)
	}
	return s.buf[:n]
}

// iovs returns the shared iovec array, emptied.
func (s *loopShared) iovs() []unix.Iovec {
	if s.iov == nil {
		s.iov = make([]unix.Iovec, 0, maxIov)
	}
	return s.iov[:0]
}
