package bench

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine names the processor measurements ran on: its model name where
// Linux gives one (/proc/cpuinfo), else the OS and architecture, and the
// number of CPUs.
func Machine() string {
	cpu := fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH)
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(name, " \t:"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs", cpu, runtime.NumCPU())
}
