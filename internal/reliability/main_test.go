package reliability

import (
	"testing"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// TestMain fails the suite when the tests, taken together, leave descriptors,
// kernel-object mappings or goroutines behind. Tests that can pin a leak on
// themselves also check their own snapshot (see checkLeaks).
func TestMain(m *testing.M) { leakcheck.Main(m) }
