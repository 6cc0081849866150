package cache

import (
	"fmt"
	"testing"
	"time"

	"lrmc/internal/cputime"
)

// reportCPU adds MB per CPU-second (all of the process's threads, Badger's
// included), which unlike MB/s holds still on a shared, overloaded machine.
func reportCPU(b *testing.B, start time.Duration, bytes int64) {
	cpu := cputime.Process() - start
	b.ReportMetric(float64(bytes)*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
}

// The benchmarks move 64 MiB values: the size of one layer's calibration
// activations for a small model (128 samples × 128 tokens × 1024 × fp32).
// Each runs both layouts in the same process, so the comparison holds on a
// busy machine: "chunks" is every value in Badger's value log (lrmc before
// value files), "files" the default. "files+fsync" also fsyncs each value
// before the Put returns (Close does that once for all of them otherwise).

var layouts = []struct {
	name string
	opts Options
}{{"chunks", chunksOnly}, {"files", Options{}}}

func BenchmarkPut64MiB(b *testing.B) {
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) { benchPut(b, l.opts, 64<<20, false) })
	}
	b.Run("files+fsync", func(b *testing.B) { benchPut(b, Options{}, 64<<20, true) })
}

func BenchmarkGet64MiB(b *testing.B) {
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) { benchGet(b, l.opts, 64<<20) })
	}
}

// BenchmarkLayout compares the layouts around blobThreshold.
func BenchmarkLayout(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20} {
		for _, l := range layouts {
			opts := l.opts
			if l.name == "files" {
				opts.blobThreshold = 1 // every value a file, whatever the default
			}
			b.Run(fmt.Sprintf("put/%s/%dKiB", l.name, size>>10), func(b *testing.B) { benchPut(b, opts, size, false) })
			b.Run(fmt.Sprintf("get/%s/%dKiB", l.name, size>>10), func(b *testing.B) { benchGet(b, opts, size) })
		}
	}
}

func benchPut(b *testing.B, opts Options, size int, sync bool) {
	s := openTest(b, "", opts)
	v := payload(1, size)
	b.SetBytes(int64(len(v)))
	start := cputime.Process()
	i := 0
	for b.Loop() {
		// A fresh key each time: re-putting a stored value is a no-op.
		if err := s.Put(key(fmt.Sprint("bench put ", i)), "bench", "", v); err != nil {
			b.Fatal(err)
		}
		if sync {
			if err := s.unsynced.sync(s.dir); err != nil {
				b.Fatal(err)
			}
		}
		i++
	}
	reportCPU(b, start, int64(len(v)))
}

func benchGet(b *testing.B, opts Options, size int) {
	s := openTest(b, "", opts)
	v := payload(2, size)
	k := key("bench get")
	if err := s.Put(k, "bench", "", v); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(v)))
	start := cputime.Process()
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
	start := cputime.Process()
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
	b.ReportMetric(float64((cputime.Process()-start).Microseconds())/1e3/float64(b.N), "cpu-ms/op")
}
