package main

import (
	"os"
	"testing"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestTour runs the demo a newcomer runs first, so it cannot rot: it fails
// if anything it counts was lost. Where BPF is available the ring part runs
// too (and CI requires it).
func TestTour(t *testing.T) {
	if os.Getenv(bpftest.RequireEnv) == "1" {
		bpftest.Require(t)
	}
	if err := tour(); err != nil {
		t.Fatal(err)
	}
}
