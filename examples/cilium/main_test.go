package main

import (
	"errors"
	"os"
	"testing"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestRun loads the real program and sees every command's exec through
// both maps. It needs root (CAP_BPF, CAP_PERFMON); it skips
// without, unless EVENTPIPE_REQUIRE_BPF=1.
func TestRun(t *testing.T) {
	rep, err := run(5)
	if errors.Is(err, os.ErrPermission) && os.Getenv("EVENTPIPE_REQUIRE_BPF") != "1" {
		t.Skipf("needs root: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.viaRing != 5 || rep.viaPerf != 5 || rep.stats.Errors != 0 || rep.stats.RingDropped != 0 {
		t.Fatalf("%+v", rep)
	}
	t.Logf("%+v", rep)
}
