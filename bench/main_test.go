package bench

import (
	"testing"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// TestMain fails the binary when its tests or benchmarks leave descriptors,
// kernel-object mappings or goroutines behind, as in every other package.
func TestMain(m *testing.M) { leakcheck.Main(m) }
