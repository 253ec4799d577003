package leakcheck_test

import (
	"testing"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// TestMain holds this package's own example to the rule it enforces
// everywhere else.
func TestMain(m *testing.M) { leakcheck.Main(m) }
