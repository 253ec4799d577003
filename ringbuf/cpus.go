package ringbuf

import (
	"fmt"
	"os"
	"strings"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// PossibleCPUs returns the CPUs the kernel could ever bring online
// (/sys/devices/system/cpu/possible), the key space of a perf event array
// that has a slot for every CPU: a map sized by it never lacks the slot of a
// CPU that comes online later.
func PossibleCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return nil, fmt.Errorf("ringbuf: possible CPUs: %w", err)
	}
	cpus, err := bpfsys.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("ringbuf: possible CPUs: %w", err)
	}
	return cpus, nil
}

// onlineCPUs reads the kernel's list of online CPUs.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return bpfsys.ParseCPUList(strings.TrimSpace(string(b)))
}
