package safetensors

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// mappedRSS is the resident kilobytes of the mapping that starts at addr,
// from /proc/self/smaps.
func mappedRSS(t *testing.T, addr uintptr) int {
	t.Helper()
	fh, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer fh.Close()
	want := fmt.Sprintf("%x-", addr)
	in := false
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 && !strings.HasSuffix(f[0], ":") {
			// A mapping's header line: "start-end perms offset dev inode path".
			in = strings.HasPrefix(line, want)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			var kb int
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, "Rss:"), "%d", &kb); err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("mapping at %x not in /proc/self/smaps", addr)
	return 0
}

// Evict drops a tensor's pages from the resident set and leaves its data
// readable and unchanged; a slice outside the mapping is refused.
func TestEvict(t *testing.T) {
	const n = 1 << 20 // 4 MiB of float32
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i%977) - 300
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteFile(path, []Tensor{F32("w", []int{n}, v)}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, _ := f.Tensor("w")
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapping)))
	var sum byte
	for i := 0; i < len(w.Data); i += 512 {
		sum += w.Data[i]
	}
	t.Logf("read %d pages (checksum %d)", len(w.Data)/4096, sum)
	touched := mappedRSS(t, addr)
	if touched < 4000 {
		t.Fatalf("after reading the tensor %d KiB of the mapping are resident, want ≥ 4000", touched)
	}
	if !f.Evict(w.Data) {
		t.Fatal("Evict refused the file's own tensor")
	}
	if after := mappedRSS(t, addr); after > 8 {
		t.Errorf("after Evict %d KiB of the mapping are resident (before %d), want at most the two partial pages", after, touched)
	}
	got, err := w.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("after Evict value %d is %v, want %v", i, got[i], v[i])
		}
	}
	heap := make([]byte, 1<<16)
	heap[100] = 7
	if f.Evict(heap) {
		t.Error("Evict accepted a heap slice")
	}
	if heap[100] != 7 {
		t.Error("Evict touched a heap slice")
	}
	if (&File{}).Evict(w.Data) {
		t.Error("a File without a mapping claimed the tensor")
	}
}
