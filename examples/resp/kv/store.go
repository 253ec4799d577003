package kv

import (
	"hash/maphash"
	"sync"
)

// shards spreads the keys over locks, so loops serving different keys
// rarely wait for each other.
const shards = 64

// Store is an in-memory map of keys to values, shared by every loop of a
// server and safe for concurrent use: a key set on one connection is seen
// on every other, whichever loop serves it. Each key's shard has a lock of
// its own.
type Store struct {
	seed   maphash.Seed
	shards [shards]shard
}

type shard struct {
	mu sync.Mutex
	m  map[string]*entry
	_  [40]byte // keeps neighbouring shards' locks off one cache line
}

// entry holds a value; SET on an existing key overwrites it in place, so a
// steady stream of SETs allocates nothing.
type entry struct{ val []byte }

// NewStore returns an empty store.
func NewStore() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
	}
	return s
}

func (s *Store) shard(key []byte) *shard {
	return &s.shards[maphash.Bytes(s.seed, key)%shards]
}

// Len returns the number of keys.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
