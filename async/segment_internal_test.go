package async

import (
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// recorder posts tasks that append their number to got, and checks that
// they ran in the order they were numbered.
type recorder struct {
	t    *testing.T
	q    *Queue
	next int
	got  []int
}

func (r *recorder) task() func() {
	i := r.next
	r.next++
	return func() { r.got = append(r.got, i) }
}

func (r *recorder) post(n int) {
	for range n {
		require.NoError(r.t, r.q.Post(r.task()))
	}
}

func (r *recorder) check() {
	r.t.Helper()
	require.Len(r.t, r.got, r.next)
	for i, v := range r.got {
		if v != i {
			r.t.Fatalf("task %d ran in place %d", v, i)
		}
	}
}

// TestStaleProducerAcrossReuse plays a producer that loaded the tail and
// was held up while that segment filled, drained, was retired and was reused:
// its claim must never land in a segment off the list, nor be lost.
func TestStaleProducerAcrossReuse(t *testing.T) {
	q, err := NewQueue()
	require.NoError(t, err)
	defer q.Close()
	r := &recorder{t: t, q: q}

	s0 := q.tail.Load()
	r.post(segSize + 1) // s0 full, one task in s1
	s1 := q.tail.Load()
	require.NotSame(t, s0, s1)
	require.Equal(t, segSize+1, q.Drain())
	require.Equal(t, 1, FreeSegments(q), "s0 retired for reuse")

	// s0 is retired: the claim counts for nothing and goes to the tail.
	require.NoError(t, q.claim(s0, r.task()))
	require.Equal(t, 1, q.Len())
	require.Same(t, s1, q.tail.Load())

	// Fill s1 and overflow: s0 comes back as the tail after it.
	r.post(segSize - 2 + 1)
	require.Same(t, s0, q.tail.Load(), "the retired segment is reused")
	require.Equal(t, uint64(2*segSize), s0.base.Load())

	// A producer still holding s0 from its first incarnation claims a
	// slot of its second, which is on the list; one holding s1, now full
	// and not the tail, moves on to the tail.
	require.NoError(t, q.claim(s0, r.task()))
	require.NoError(t, q.claim(s1, r.task()))
	r.post(3)
	require.Equal(t, r.next-(segSize+1), q.Len())
	require.Equal(t, r.next-(segSize+1), q.Drain())
	r.check()
	require.Zero(t, q.Len())
}

// TestCloseRefusesAnOverflowingClaim: a producer whose claim found the tail
// full just before Close must not link a segment after Close and post into
// it; its Post fails, and the full segment's tasks still drain.
func TestCloseRefusesAnOverflowingClaim(t *testing.T) {
	q, err := NewQueue()
	require.NoError(t, err)
	r := &recorder{t: t, q: q}
	r.post(segSize)
	s0 := q.tail.Load()

	// The producer's claim, made before Close, found no room...
	c := s0.claimed.Add(1)
	require.Zero(t, c&closedBit)
	require.Equal(t, uint64(segSize+1), c&countMask)
	require.NoError(t, q.Close())
	// ...and when it comes to link the next segment, Close has been.
	require.ErrorIs(t, q.grow(s0), os.ErrClosed)
	require.ErrorIs(t, q.claim(s0, r.task()), os.ErrClosed)
	r.next-- // that task was refused
	require.Same(t, s0, q.tail.Load())
	require.Nil(t, s0.next.Load())

	require.Equal(t, segSize, q.Len())
	require.Equal(t, segSize, q.Drain())
	r.check()
	require.Zero(t, q.Len())
}

// TestCloseMidSegment: claims made before Close count, those after are
// refused even though the segment has room, and the consumer does not wait
// for slots no one will fill.
func TestCloseMidSegment(t *testing.T) {
	q, err := NewQueue()
	require.NoError(t, err)
	r := &recorder{t: t, q: q}
	r.post(10)
	require.NoError(t, q.Close())
	s := q.tail.Load()
	require.ErrorIs(t, q.claim(s, r.task()), os.ErrClosed) // racing past the closed check
	r.next--
	require.Equal(t, 10, q.Len())
	require.Equal(t, 10, q.Drain())
	r.check()
	require.Zero(t, q.Len())
	require.Zero(t, q.Drain())
}

// TestBurstIsReleased: after a backlog of many segments drains, the queue
// keeps maxFree of them at hand, the next burst reuses the rest, and once
// bursts stop the collector takes them.
func TestBurstIsReleased(t *testing.T) {
	q, err := NewQueue()
	require.NoError(t, err)
	defer q.Close()
	fn := func() {}
	burst := func() {
		for range 4 * maxFree * segSize {
			require.NoError(t, q.Post(fn))
		}
		require.Equal(t, 4*maxFree*segSize, q.Drain())
	}
	burst()
	require.Equal(t, maxFree, FreeSegments(q))
	burst() // needs one segment more: the one the consumer is still on

	// The next burst takes its segments from the pool: no segment is
	// allocated, only perhaps the pool's own bookkeeping. Under the race
	// detector sync.Pool drops some of what it is given, so only without
	// it can this be checked.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	burst()
	runtime.ReadMemStats(&after)
	if !raceEnabled {
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(unsafe.Sizeof(segment{})),
			"a segment was allocated")
	}

	runtime.GC()
	runtime.GC() // the pool's victim cache lasts one cycle
	require.Nil(t, q.spill.Get(), "spilled segments outlive two collections")
	require.Equal(t, maxFree, FreeSegments(q))
}
