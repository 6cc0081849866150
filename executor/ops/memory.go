package ops

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
)

// memoryState is what an op weighs an optional memory cost against.
type memoryState struct {
	// Limit is the Go runtime's soft memory limit: lrmc apply's
	// --memory-limit, or GOMEMLIMIT; math.MaxInt64 when none is set.
	Limit int64
	// InUse is the memory the runtime holds now, as the limit counts it
	// (everything it mapped, less what it returned to the system).
	InUse int64
	// Available is the machine's available memory (Linux's MemAvailable),
	// 0 when unknown.
	Available int64
}

// fits says whether need more bytes may be spent, and why. Under a limit
// the user set, when they fit beneath it beside what the process holds.
// Without one, when they take at most half of the machine's available
// memory: the rest is left to the kernel's page cache (memory-mapped
// checkpoints and the cache's value log live there) and to the other work
// on the machine. Unknown memory says no.
func (m memoryState) fits(need int64) (bool, string) {
	if m.Limit < math.MaxInt64 {
		if m.InUse+need <= m.Limit {
			return true, fmt.Sprintf("%d in use + %d needed fit the memory limit of %d", m.InUse, need, m.Limit)
		}
		return false, fmt.Sprintf("%d in use + %d needed exceed the memory limit of %d", m.InUse, need, m.Limit)
	}
	if m.Available <= 0 {
		return false, "no memory limit is set and the machine's available memory is unknown"
	}
	if need <= m.Available/2 {
		return true, fmt.Sprintf("%d needed fit in half of the %d bytes available", need, m.Available)
	}
	return false, fmt.Sprintf("%d needed exceed half of the %d bytes available (set --memory-limit to decide otherwise)", need, m.Available)
}

// currentMemory reads the process's memory state; tests replace it.
var currentMemory = func() memoryState {
	m := memoryState{Limit: debug.SetMemoryLimit(-1), Available: availableMemory()}
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 && s[1].Value.Kind() == metrics.KindUint64 {
		m.InUse = int64(s[0].Value.Uint64() - s[1].Value.Uint64())
	}
	return m
}

// availableMemory is /proc/meminfo's MemAvailable in bytes, 0 when it
// cannot be read.
func availableMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			fs := strings.Fields(v)
			if len(fs) != 2 || fs[1] != "kB" {
				return 0
			}
			kb, err := strconv.ParseInt(fs[0], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
