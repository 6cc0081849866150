//go:build !unix

package train

import "time"

// processCPUTime is not measured here; benchmarks then report 0 CPU-seconds.
func processCPUTime() time.Duration { return 0 }
