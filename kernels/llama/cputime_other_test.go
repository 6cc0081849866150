//go:build !unix

package llama

import "time"

// processCPUTime is unknown here; the CPU-time metric is then not reported.
func processCPUTime() time.Duration { return 0 }
