//go:build !linux

package atomicfile

// exchange has no atomic form here: the caller falls back to two renames.
func exchange(a, b string) error { return errNoExchange }
