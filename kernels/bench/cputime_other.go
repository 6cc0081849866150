//go:build !unix

package bench

import "time"

// processCPUTime is unknown off Unix; results then report no CPU rate.
func processCPUTime() time.Duration { return 0 }
