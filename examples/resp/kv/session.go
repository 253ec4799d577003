package kv

// FlushAt is the reply size past which Feed stops taking requests, so the
// caller writes what it has before going on: pipelined GETs of large
// values cannot grow Out without bound.
const FlushAt = 64 << 10

// Session turns a connection's input into replies. One session may serve
// many connections in turn (one loop's, one at a time), since it keeps
// nothing between Feed calls but scratch memory.
type Session struct {
	Store *Store
	Out   []byte // replies to write; the caller empties it after writing
	args  [][]byte
}

// NewSession returns a session on s.
func NewSession(s *Store) *Session {
	return &Session{Store: s, Out: make([]byte, 0, 4096), args: make([][]byte, 0, 16)}
}

// Feed runs the whole requests at the start of data, appending their
// replies to Out, and returns the bytes it used: the rest (a request cut
// short) is to be given again with more input after it. It stops early once
// Out reaches FlushAt; call it again with data[consumed:] after writing.
// close asks the caller to close the connection once Out is written: after
// QUIT, or after a protocol error, which has been answered with a RESP error.
func (s *Session) Feed(data []byte) (consumed int, close bool) {
	for consumed < len(data) && len(s.Out) < FlushAt {
		args, n, err := Parse(data[consumed:], s.args)
		s.args = args[:0]
		if err != nil {
			s.Out = append(s.Out, "-ERR "...)
			s.Out = append(s.Out, err.Error()...)
			s.Out = append(s.Out, '\r', '\n')
			return len(data), true
		}
		if n == 0 {
			break
		}
		consumed += n
		var quit bool
		if s.Out, quit = s.Store.Handle(s.Out, args); quit {
			return len(data), true
		}
	}
	return consumed, false
}
