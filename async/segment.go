package async

import "sync/atomic"

// segSize is the number of task slots in a segment: with its 64-byte header
// a segment is exactly 16 KiB, one of the allocator's size classes. That is
// large enough that the mutex taken at a segment boundary is amortised over
// many posts, and small enough that an idle queue holds little.
const segSize = (16<<10 - cacheLine) / 16

const cacheLine = 64

// maxFree bounds the retired segments a queue keeps at hand; more go to a
// sync.Pool, from which the collector frees them when they stay unused, so a
// burst does not pin its peak memory for the queue's lifetime.
const maxFree = 16

// A segment's claimed word packs everything a producer must learn in the one
// atomic add that claims a slot: how many claims this incarnation of the
// segment has seen, whether it is open for claims, whether the queue is
// closed, and the incarnation's generation.
const (
	countBits  = 40
	countMask  = 1<<countBits - 1
	notOpenBit = 1 << countBits       // free, or being linked: a claim counts for nothing
	closedBit  = 1 << (countBits + 1) // the queue is closed: a claim is refused
	genShift   = countBits + 2
	genMask    = 1<<(64-genShift) - 1
)

// slot holds one task. ready is the generation of the incarnation whose
// producer published fn into it: a value from an earlier incarnation of the
// same segment never equals the current one, so slots need no reset between
// incarnations.
type slot struct {
	fn      func()
	ready   atomic.Uint32
	counted bool // posted with PostLimited or PostContext under a limit
}

// segment is a fixed run of slots in the queue's linked list. Producers
// claim slots with an add on claimed; the consumer reads them in order and
// hands the segment back for reuse once it has moved past it.
type segment struct {
	// Every Post adds to claimed. The other header fields share its cache
	// line: they change once per segment, and whoever reads base reads
	// claimed too.
	claimed atomic.Uint64
	next    atomic.Pointer[segment]
	// base is the queue position of slots[0]: it only grows from one
	// incarnation to the next, so a reader can tell if a segment was
	// reused under it.
	base atomic.Uint64
	// closeAt is how many slots of this segment were claimed before Close
	// set closedBit, that is how many tasks it accepted. Guarded by the
	// queue's growMu, and meaningful only once closedBit is set.
	closeAt uint64
	_       [cacheLine - 32]byte

	slots [segSize]slot
}

func newSegment() *segment {
	s := new(segment)
	s.claimed.Store(notOpenBit | 1<<genShift)
	return s
}

// gen returns the generation packed in a claimed word.
func gen(c uint64) uint32 { return uint32(c >> genShift) }

// accepted returns how many tasks a claimed word (not closed) accounts for.
func accepted(c uint64) uint64 {
	if c&notOpenBit != 0 {
		return 0
	}
	return min(c&countMask, segSize)
}

// open lets producers claim slots of a segment that is linked and is the
// queue's tail. Claims made while it was not open counted for nothing, and
// their producers retried, so the count restarts at zero. closedBit is kept.
func (s *segment) open() {
	for {
		c := s.claimed.Load()
		if s.claimed.CompareAndSwap(c, c&^(notOpenBit|countMask)) {
			return
		}
	}
}

// retire prepares a segment the consumer has finished with for reuse. A
// producer may still hold a pointer to it from before it filled; the new
// generation and notOpenBit make that producer's claim count for nothing.
// The slots' fn fields were already cleared by the consumer.
func (s *segment) retire() {
	g := (s.claimed.Load()>>genShift + 1) & genMask
	if g == 0 {
		g = 1
	}
	s.next.Store(nil)
	s.claimed.Store(notOpenBit | g<<genShift)
}
