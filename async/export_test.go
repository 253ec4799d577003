package async

// Internals the external tests need to aim at segment boundaries.
const (
	SegSize = segSize
	MaxFree = maxFree
)

// FreeSegments returns how many retired segments q keeps for reuse.
func FreeSegments(q *Queue) int {
	q.growMu.Lock()
	defer q.growMu.Unlock()
	return len(q.free)
}
