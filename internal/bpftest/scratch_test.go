package bpftest

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestScratchLookup(t *testing.T) {
	m, err := NewPerfEventArray(0)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	v, err := m.LookupU32(0)
	t.Logf("empty: %d %v (%#v)", v, err, err)
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_BPF_OUTPUT, Sample_type: unix.PERF_SAMPLE_RAW, Wakeup: 1}
	attr.Size = uint32(112)
	fd, err := unix.PerfEventOpen(&attr, -1, 0, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	t.Log(m.UpdateU32(0, uint32(fd)))
	v, err = m.LookupU32(0)
	t.Logf("full: %d %v", v, err)
	t.Log(m.Delete(0), m.Delete(0))
	a, _ := NewArray(2, 4)
	defer a.Close()
	t.Log(a.LookupU32(1))
	t.Log(a.LookupU32(2))
	t.Log(a.Delete(1))
}
