//go:build !unix

package attention

import "time"

// processCPUTime is unknown here; the CPU-time metric is then not reported.
func processCPUTime() time.Duration { return 0 }
