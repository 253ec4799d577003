package kv

import (
	"bytes"
	"math"
	"strconv"
)

// Handle runs one request (as Parse returned it) against s and appends its
// RESP2 reply to out. quit reports a QUIT: the server closes the
// connection once the reply is sent. Every mistake a client can make (an
// unknown command, a wrong number of arguments, INCR of a non-number) is a
// RESP error reply, never a panic. PING, GET of an existing key and SET of
// an existing key allocate nothing once out has room.
func (s *Store) Handle(out []byte, args [][]byte) (reply []byte, quit bool) {
	if len(args) == 0 {
		return out, false
	}
	cmd, args := args[0], args[1:]
	switch {
	case is(cmd, "GET"):
		if len(args) != 1 {
			return arity(out, "get"), false
		}
		return s.get(out, args[0]), false
	case is(cmd, "SET"):
		if len(args) != 2 {
			return arity(out, "set"), false
		}
		s.set(args[0], args[1])
		return append(out, "+OK\r\n"...), false
	case is(cmd, "PING"):
		switch len(args) {
		case 0:
			return append(out, "+PONG\r\n"...), false
		case 1:
			return appendBulk(out, args[0]), false
		}
		return arity(out, "ping"), false
	case is(cmd, "ECHO"):
		if len(args) != 1 {
			return arity(out, "echo"), false
		}
		return appendBulk(out, args[0]), false
	case is(cmd, "DEL"):
		if len(args) == 0 {
			return arity(out, "del"), false
		}
		return appendInt(out, ':', int64(s.del(args))), false
	case is(cmd, "INCR"):
		if len(args) != 1 {
			return arity(out, "incr"), false
		}
		return s.incr(out, args[0]), false
	case is(cmd, "QUIT"):
		return append(out, "+OK\r\n"...), true
	case is(cmd, "CONFIG"):
		// redis-benchmark asks for "save" and "appendonly" first; an
		// empty value for any parameter satisfies it.
		if len(args) != 2 || !is(args[0], "GET") {
			return append(out, "-ERR only CONFIG GET <parameter> is supported\r\n"...), false
		}
		out = append(out, "*2\r\n"...)
		out = appendBulk(out, args[1])
		return append(out, "$0\r\n\r\n"...), false
	case is(cmd, "COMMAND"):
		return append(out, "*0\r\n"...), false // no command table to offer
	}
	out = append(out, "-ERR unknown command '"...)
	out = appendSafe(out, cmd)
	return append(out, "'\r\n"...), false
}

func is(arg []byte, name string) bool {
	return len(arg) == len(name) && bytes.EqualFold(arg, []byte(name))
}

func arity(out []byte, name string) []byte {
	out = append(out, "-ERR wrong number of arguments for '"...)
	out = append(out, name...)
	return append(out, "' command\r\n"...)
}

// appendSafe appends at most 64 bytes of a client's bytes to an error
// line, with line breaks made spaces, so the reply stays one line.
func appendSafe(out, b []byte) []byte {
	if len(b) > 64 {
		b = b[:64]
	}
	for _, c := range b {
		if c == '\r' || c == '\n' {
			c = ' '
		}
		out = append(out, c)
	}
	return out
}

func appendInt(out []byte, kind byte, v int64) []byte {
	out = append(out, kind)
	out = strconv.AppendInt(out, v, 10)
	return append(out, '\r', '\n')
}

func appendBulk(out, b []byte) []byte {
	out = appendInt(out, '$', int64(len(b)))
	out = append(out, b...)
	return append(out, '\r', '\n')
}

func (s *Store) get(out, key []byte) []byte {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[string(key)]
	if e == nil {
		return append(out, "$-1\r\n"...)
	}
	return appendBulk(out, e.val)
}

func (s *Store) set(key, val []byte) {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.m[string(key)]; e != nil {
		if cap(e.val) > 4*len(val)+64 {
			e.val = nil // do not keep a large buffer for a small value
		}
		e.val = append(e.val[:0], val...)
		return
	}
	sh.m[string(key)] = &entry{val: append([]byte(nil), val...)}
}

func (s *Store) del(keys [][]byte) int {
	n := 0
	for _, key := range keys {
		sh := s.shard(key)
		sh.mu.Lock()
		if _, ok := sh.m[string(key)]; ok {
			delete(sh.m, string(key))
			n++
		}
		sh.mu.Unlock()
	}
	return n
}

func (s *Store) incr(out, key []byte) []byte {
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.m[string(key)]
	var v int64
	if e != nil {
		var ok bool
		if v, ok = parseInt(e.val); !ok {
			return append(out, "-ERR value is not an integer or out of range\r\n"...)
		}
	}
	if v == math.MaxInt64 {
		return append(out, "-ERR increment or decrement would overflow\r\n"...)
	}
	v++
	if e == nil {
		e = &entry{}
		sh.m[string(key)] = e
	}
	e.val = strconv.AppendInt(e.val[:0], v, 10)
	return appendInt(out, ':', v)
}
