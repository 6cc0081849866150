package inputstats

import (
	"strings"
	"testing"

	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
)

// The cache codec is calibstats' byte format: a round trip keeps every
// value, and a wrong type or corrupt bytes are errors, never panics.
func TestCodec(t *testing.T) {
	s := calibstats.NewSite(llama.SiteMLPIn, 2, true)
	if err := s.Add([]float32{1, -2, 3, 0.5}, 1); err != nil {
		t.Fatal(err)
	}
	l := &calibstats.Layer{Layer: 2, Sites: []calibstats.Site{*s}}
	b, err := codec{}.Encode(l)
	if err != nil {
		t.Fatal(err)
	}
	v, err := codec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*calibstats.Layer)
	if got.Layer != 2 || got.Sites[0].Gram[1] != -2+1.5 || got.Sites[0].SumSq[1] != 4.25 {
		t.Fatalf("round trip: %+v", got.Sites[0])
	}
	if _, err := (codec{}).Encode(s); err == nil || !strings.Contains(err.Error(), "want *calibstats.Layer") {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := (codec{}).Decode(b[:len(b)-1]); err == nil {
		t.Fatal("truncated statistics decoded")
	}
}

func TestMaxHessianEnv(t *testing.T) {
	for s, want := range map[string]int64{"": 0, "2GiB": 2 << 30, "1000": 1000} {
		t.Setenv(MaxHessianEnv, s)
		if n, err := maxHessianBytes(); err != nil || n != want {
			t.Errorf("%q: %d, %v; want %d", s, n, err, want)
		}
	}
	t.Setenv(MaxHessianEnv, "0")
	if _, err := maxHessianBytes(); err == nil {
		t.Error("a zero bound was accepted")
	}
}
