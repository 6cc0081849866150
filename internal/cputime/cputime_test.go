package cputime

import (
	"runtime"
	"testing"
	"time"
)

// TestProcessAdvancesWithWork: spinning on one core for 50 ms of wall time
// adds CPU time (at least a fifth of it, whatever else the host runs), and
// the clock never goes back.
func TestProcessAdvancesWithWork(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no getrusage here")
	}
	before := Process()
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	after := Process()
	if after < before+10*time.Millisecond {
		t.Fatalf("CPU time went %v → %v over 50 ms of spinning (%d turns)", before, after, x)
	}
}
