package async

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A drain that meets a claimed slot whose task is not yet published (its
// producer descheduled between the claim and the store) stops there instead
// of waiting, leaving it and what follows in order; the producer's store and
// wakeup bring the consumer back, and nothing is lost or reordered.
func TestDrainStopsAtUnpublishedSlot(t *testing.T) {
	q, err := NewQueue()
	require.NoError(t, err)
	defer q.Close()
	r := &recorder{t: t, q: q}
	r.post(2)

	// A producer claims the third slot and is held before publishing.
	s := q.tail.Load()
	c := s.claimed.Add(1)
	held := r.task()
	r.post(2)

	ran, more := q.DrainEdgeN(0)
	require.Equal(t, 2, ran, "the two tasks before the held one")
	require.False(t, more, "a held producer is not budget left over")
	require.Equal(t, 3, q.Len())
	ran, _ = q.DrainEdgeN(0)
	require.Zero(t, ran, "still held: the drain returns at once")

	// The producer resumes: its store, then its wakeup.
	sl := &s.slots[c&countMask-1]
	sl.fn = held
	sl.ready.Store(gen(c))
	writes := q.Wakeups()
	q.signal()
	require.Equal(t, writes+1, q.Wakeups(), "the held producer's wakeup is a write: the drain left pending clear")

	ran, _ = q.DrainEdgeN(0)
	require.Equal(t, 3, ran)
	r.check()
	require.Zero(t, q.Len())
}
