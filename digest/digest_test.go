package digest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vectors are the first 32 bytes of the official BLAKE3 test vectors
// (github.com/BLAKE3-team/BLAKE3, test_vectors.json): input byte i is i % 251.
var vectors = []struct {
	n    int
	want string
}{
	{0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
	{1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
	{1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
	{1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
	{8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
}

func input(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func TestOfMatchesReferenceVectors(t *testing.T) {
	for _, v := range vectors {
		if got := Of(input(v.n)).String(); got != v.want {
			t.Errorf("Of(%d bytes) = %s, want %s", v.n, got, v.want)
		}
	}
}

func TestHasherStreamsInPieces(t *testing.T) {
	for _, v := range vectors {
		h := New()
		b := input(v.n)
		// Uneven pieces cross BLAKE3's 64-byte block and 1 KiB chunk edges.
		for len(b) > 0 {
			k := min(len(b), 77)
			h.Write(b[:k])
			b = b[k:]
		}
		if got := h.Digest().String(); got != v.want {
			t.Errorf("streamed %d bytes = %s, want %s", v.n, got, v.want)
		}
		h.Reset()
		if got := h.Digest().String(); got != vectors[0].want {
			t.Errorf("after Reset = %s, want the empty digest %s", got, vectors[0].want)
		}
	}
}

func TestFile(t *testing.T) {
	// 3 MiB + 5 spans several reads of the 1 MiB buffer and a short tail.
	b := input(3<<20 + 5)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := File(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := Of(b); got != want {
		t.Errorf("File = %s, want %s", got, want)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	_, err = File(missing)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("File(missing) error = %v, want ErrNotExist naming the path", err)
	}
}

func TestStringShortParse(t *testing.T) {
	d := Of(input(1))
	if got, want := d.Short(), "2d3adedff11b"; got != want {
		t.Errorf("Short = %q, want %q", got, want)
	}
	p, err := Parse(strings.ToUpper(d.String()))
	if err != nil || p != d {
		t.Errorf("Parse(upper hex) = %v, %v; want %v", p, err, d)
	}
	if d.IsZero() || !(Digest{}).IsZero() {
		t.Error("IsZero wrong")
	}

	for _, tc := range []struct{ in, want string }{
		{"abc", `parse digest "abc": not a digest: want 64 hex characters, got 3`},
		{strings.Repeat("g", 64), `parse digest "` + strings.Repeat("g", 64) + `": not a digest: encoding/hex: invalid byte: U+0067 'g'`},
	} {
		_, err := Parse(tc.in)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	type rec struct{ Key Digest }
	in := rec{Key: Of(input(1024))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Key":"` + vectors[2].want + `"}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var out rec
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip = %v, %v; want %v", out, err, in)
	}
	if err := json.Unmarshal([]byte(`{"Key":"zz"}`), &out); !errors.Is(err, ErrSyntax) {
		t.Errorf("bad json digest error = %v, want ErrSyntax", err)
	}
}

func BenchmarkOf64MiB(b *testing.B) {
	buf := input(64 << 20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		Of(buf)
	}
}
