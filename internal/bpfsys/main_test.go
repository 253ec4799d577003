package bpfsys

import (
	"testing"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
