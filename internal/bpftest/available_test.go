package bpftest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// recordingTB stands in for a test so that Require's verdict can be checked
// without ending the real test.
type recordingTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordingTB) Helper()                          {}
func (r *recordingTB) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestAvailable(t *testing.T) {
	Require(t)
	require.NoError(t, Available())
}

func TestRequireVerdicts(t *testing.T) {
	denied := fmt.Errorf("array map: %w: %w", ErrUnavailable, unix.EPERM)
	broken := fmt.Errorf("array map: %w", unix.EINVAL)

	t.Setenv(RequireEnv, "")
	var tb recordingTB
	require_(&tb, nil)
	assert.Equal(t, recordingTB{}, tb, "available: neither skip nor fail")

	tb = recordingTB{}
	require_(&tb, denied)
	assert.Contains(t, tb.skipped, "operation not permitted")
	assert.Empty(t, tb.fatal)

	tb = recordingTB{}
	require_(&tb, broken)
	assert.Empty(t, tb.skipped)
	assert.Contains(t, tb.fatal, "invalid argument", "an unexpected error never skips")

	t.Setenv(RequireEnv, "1")
	tb = recordingTB{}
	require_(&tb, denied)
	assert.Empty(t, tb.skipped)
	assert.Contains(t, tb.fatal, RequireEnv, "EVENTPIPE_REQUIRE_BPF=1 turns the skip into a failure")
}
