package calibstats

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"lrmc/kernels/llama"
)

func sampleLayer(t *testing.T) *Layer {
	t.Helper()
	r := rand.New(rand.NewPCG(4, 4))
	l := &Layer{Layer: 3}
	for _, s := range []struct {
		site llama.Site
		w    int
		gram bool
	}{{llama.SiteAttnIn, 5, true}, {llama.SiteDownIn, 7, false}} {
		st := NewSite(s.site, s.w, s.gram)
		x := make([]float32, 11*s.w)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		if err := st.Add(x, 2); err != nil {
			t.Fatal(err)
		}
		l.Sites = append(l.Sites, *st)
	}
	return l
}

func TestCodecRoundTrip(t *testing.T) {
	l := sampleLayer(t)
	b, err := l.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := 8 + 12 + 2*28 + 8*(2*5+25+2*7); len(b) != want {
		t.Fatalf("%d bytes, want %d", len(b), want)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Layer != 3 || len(got.Sites) != 2 {
		t.Fatalf("decoded block %d with %d sites", got.Layer, len(got.Sites))
	}
	for i, s := range got.Sites {
		w := l.Sites[i]
		if s.Site != w.Site || s.Width != w.Width || s.Tokens != w.Tokens || s.Sequences != w.Sequences || (s.Gram == nil) != (w.Gram == nil) {
			t.Fatalf("site %d header %+v, want %+v", i, s, w)
		}
		for k, pair := range [][2][]float64{{s.Sum, w.Sum}, {s.SumSq, w.SumSq}, {s.Gram, w.Gram}} {
			for j := range pair[1] {
				if math.Float64bits(pair[0][j]) != math.Float64bits(pair[1][j]) {
					t.Fatalf("site %d array %d entry %d: %g, want %g", i, k, j, pair[0][j], pair[1][j])
				}
			}
		}
	}
	again, _ := got.MarshalBinary()
	if string(again) != string(b) {
		t.Fatal("re-encoding the decoded statistics changes the bytes")
	}
}

func TestCodecRejects(t *testing.T) {
	good, err := sampleLayer(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation is an error, never a panic or a short result.
	for n := range len(good) {
		if _, err := Unmarshal(good[:n]); err == nil {
			t.Fatalf("a %d-byte prefix decoded", n)
		}
	}
	if _, err := Unmarshal(append(append([]byte{}, good...), 0)); err == nil || !strings.Contains(err.Error(), "the headers say") {
		t.Fatalf("a trailing byte: %v", err)
	}
	edit := func(off int, v uint32) []byte {
		b := append([]byte{}, good...)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	const site0 = 20 // first site header
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"magic", append([]byte("LRMCSTAX"), good[8:]...), `bad magic "LRMCSTAX"`},
		{"version", edit(8, 9), "format version 9, this lrmc reads 1"},
		{"no sites", edit(16, 0), "header says 0 sites"},
		{"five sites", edit(16, 5), "header says 5 sites"},
		{"site id", edit(site0, 7), "unknown site id 7"},
		{"duplicate site", edit(site0+siteHeader, 0), "site attn_in appears twice"},
		{"zero width", edit(site0+4, 0), "attn_in: width 0 outside"},
		{"flags", edit(site0+8, 6), "unknown flags 0x6"},
		{"short", good[:len(good)-8], "the headers say"},
	} {
		if _, err := Unmarshal(c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A header claiming a huge Gram over a short body is refused from the
	// headers, before the 8 TiB it names are allocated.
	huge := edit(site0+4, maxWidth)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Unmarshal(huge); err == nil {
			t.Fatal("huge header decoded")
		}
	})
	if allocs > 10 {
		t.Fatalf("refusing a huge header took %v allocations", allocs)
	}
}

func TestMarshalRejectsInconsistent(t *testing.T) {
	l := sampleLayer(t)
	l.Sites[1].SumSq = l.Sites[1].SumSq[:3]
	if _, err := l.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "down_in of width 7 holds 7 sums, 3 squares") {
		t.Fatalf("inconsistent site: %v", err)
	}
}

// FuzzUnmarshal: no input makes Unmarshal panic, and whatever it accepts
// encodes back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	l := &Layer{Layer: 1, Sites: []Site{*NewSite(llama.SiteOIn, 3, true)}}
	if err := l.Sites[0].Add([]float32{1, 2, 3, 4, 5, 6}, 1); err != nil {
		f.Fatal(err)
	}
	good, err := l.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:30])
	f.Add([]byte("LRMCSTAT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := got.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded statistics do not encode: %v", err)
		}
		if string(again) != string(b) {
			t.Fatal("decode/encode changes the bytes")
		}
	})
}
