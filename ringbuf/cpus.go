package ringbuf

import (
	"fmt"
	"os"
	"strings"
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
	return parseCPUList(strings.TrimSpace(string(b)))
}
