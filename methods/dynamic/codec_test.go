package dynamic

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	kdyn "lrmc/kernels/dynamic"
)

// A training stage's result reads back from the cache as it was written:
// routers, losses and stage 2's adapter blob; a truncated entry is an
// error, not a silently smaller result.
func TestTrainedCodec(t *testing.T) {
	rs := &kdyn.Routers{Method: kdyn.DLLM, Skip: 0.2, Layers: make([]kdyn.Layer, 3)}
	for i := range rs.Layers {
		r := kdyn.NewRouter(4, 2)
		r.W[i], r.B[1] = float32(i)+0.5, -1
		rs.Layers[i].Block = r
	}
	for _, tr := range []Trained{
		{Routers: rs, RouterLoss: []float64{3.5, 2.25, 2}},
		{Routers: rs, RouterLoss: []float64{3.5}, LoRA: []byte("adapter blob"), LoRALoss: []float64{1.5, 1.25}},
	} {
		var c trainedCodec
		b, err := c.Encode(tr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tr, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if _, err := c.Decode(b[:len(b)/2]); err == nil {
			t.Error("a truncated result decoded")
		}
	}
	m := Trained{Routers: rs, RouterLoss: []float64{3, 2}}.Metrics()["dynamic"].(map[string]any)
	if m["method"] != "dllm" || m["ratio"] != 0.2 || m["kvRule"] != "absent" || m["routerLoss"].(map[string]any)["last"] != 2.0 {
		t.Errorf("metrics: %v", m)
	}
}
