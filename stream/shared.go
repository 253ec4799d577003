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
type loopShared struct {
	refs int
	buf  []byte
	iov  []unix.Iovec
}

var shared struct {
	mu sync.Mutex
	m  map[*loop.Loop]*loopShared
}

// acquireShared returns l's scratch, counting one more connection on it.
func acquireShared(l *loop.Loop) *loopShared {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.m == nil {
		shared.m = make(map[*loop.Loop]*loopShared)
	}
	s := shared.m[l]
	if s == nil {
		s = &loopShared{}
		shared.m[l] = s
	}
	s.refs++
	return s
}

// releaseShared drops a connection's count; the last one frees the scratch.
func releaseShared(l *loop.Loop) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s := shared.m[l]; s != nil {
		if s.refs--; s.refs <= 0 {
			delete(shared.m, l)
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
