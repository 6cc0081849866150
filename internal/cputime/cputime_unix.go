//go:build unix

// Package cputime reads the process's CPU time, which benchmarks on a
// shared host report beside wall time: it leaves out the time the process
// waited for a core.
package cputime

import (
	"syscall"
	"time"
)

// Process is the user+system CPU time of the whole process so far.
func Process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
