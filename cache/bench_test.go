package cache

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds MB per CPU-second (all of the process's threads, Badger's
// included), which unlike MB/s holds still on a shared, overloaded machine.
func reportCPU(b *testing.B, start time.Duration, bytes int64) {
	cpu := cpuTime(b) - start
	b.ReportMetric(float64(bytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
}

// The benchmarks move 64 MiB values: the size of one layer's calibration
// activations for a small model (128 samples × 128 tokens × 1024 × fp32).

func BenchmarkPut64MiB(b *testing.B) {
	s := openTest(b, "", Options{})
	v := payload(1, 64<<20)
	b.SetBytes(int64(len(v)))
	start := cpuTime(b)
	i := 0
	for b.Loop() {
		// A fresh key each time: re-putting a stored value is a no-op.
		if err := s.Put(key(fmt.Sprint("bench put ", i)), "bench", "", v); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportCPU(b, start, int64(len(v)))
}

func BenchmarkGet64MiB(b *testing.B) {
	s := openTest(b, "", Options{})
	v := payload(2, 64<<20)
	k := key("bench get")
	if err := s.Put(k, "bench", "", v); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(v)))
	start := cpuTime(b)
	for b.Loop() {
		if _, _, err := s.Get(k); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start, int64(len(v)))
}

// BenchmarkOpenClose is what every command pays to use the cache: open a
// store holding a few entries and metadata, read an entry, close it. A
// warm apply is little more.
func BenchmarkOpenClose(b *testing.B) {
	dir := b.TempDir()
	s := openTest(b, dir, Options{})
	for i := range 50 {
		if err := s.Put(key(fmt.Sprint("entry ", i)), "bench", "", payload(uint64(i), 1000)); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	start := cpuTime(b)
	for b.Loop() {
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Get(key("entry 7")); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}
