package dynamic

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testRouters(m Method, layers, dim int) *Routers {
	rs := &Routers{Method: m, Skip: 0.4, Layers: make([]Layer, layers)}
	seed := float32(0.01)
	fill := func(r *Router) *Router {
		for i := range r.W {
			seed = seed*1.7 + 0.013
			if seed > 1 {
				seed -= 2
			}
			r.W[i] = seed
		}
		for i := range r.B {
			r.B[i] = float32(i) * 0.25
		}
		return r
	}
	for i := 1; i < layers-1; i++ { // first and last dense, as MoD has them
		l := &rs.Layers[i]
		switch m {
		case MoD:
			l.Attn, l.MLP = fill(NewRouter(dim, 1)), fill(NewRouter(dim, 1))
			l.AttnPred, l.MLPPred = fill(NewRouter(dim, 1)), fill(NewRouter(dim, 1))
		case DLLM:
			l.Block = fill(NewRouter(dim, 2))
		case SkipGPT:
			l.Attn, l.MLP = fill(NewRouter(dim, 2)), fill(NewRouter(dim, 2))
		}
	}
	return rs
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, m := range Methods {
		rs := testRouters(m, 4, 8)
		if err := rs.Validate(4, 8); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		path := filepath.Join(t.TempDir(), FileName)
		if err := Save(path, rs); err != nil {
			t.Fatal(err)
		}
		got, err := Load(path, 4, 8)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if diff := cmp.Diff(rs, got); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", m, diff)
		}
		if _, err := Load(path, 5, 8); err == nil || !strings.Contains(err.Error(), "the model has 5 layers") {
			t.Errorf("%s: loading for 5 layers: %v", m, err)
		}
		if _, err := Load(path, 4, 16); err == nil || !strings.Contains(err.Error(), "reads 8 features, the model's hidden size is 16") {
			t.Errorf("%s: loading for dim 16: %v", m, err)
		}
	}
}

func TestValidateRejectsWrongRouters(t *testing.T) {
	rs := testRouters(SkipGPT, 3, 4)
	rs.Layers[1].Block = NewRouter(4, 2)
	if err := rs.Validate(3, 4); err == nil || err.Error() != "dynamic: layer 1: SkipGPT has attention and MLP routers only" {
		t.Errorf("got %v", err)
	}
	rs = testRouters(MoD, 3, 4)
	rs.Layers[1].AttnPred = nil
	if err := rs.Validate(3, 4); err == nil || !strings.Contains(err.Error(), "each with its predictor") {
		t.Errorf("got %v", err)
	}
	rs = testRouters(DLLM, 3, 4)
	rs.Layers[1].Block = NewRouter(4, 1)
	if err := rs.Validate(3, 4); err == nil || err.Error() != "dynamic: router model.layers.1.router.block has 1 outputs, dllm needs 2" {
		t.Errorf("got %v", err)
	}
}

// TestDecide checks the evaluation-time rules against hand-computed logits.
func TestDecide(t *testing.T) {
	x := []float32{1, 2, -1, 0.5} // two tokens of dim 2
	exec, scale, scratch := make([]bool, 2), make([]float32, 2), make([]float32, 4)

	rs := &Routers{Method: SkipGPT, Layers: []Layer{{
		Attn: &Router{Dim: 2, Out: 2, W: []float32{1, 0, 0, 1}, B: []float32{0, 0}}, // [skip=x0, exec=x1]
	}}}
	rs.Decide(0, Attn, x, 2, exec, scale, scratch)
	if !cmp.Equal(exec, []bool{true, true}) || !cmp.Equal(scale, []float32{1, 1}) {
		t.Errorf("skipgpt attn: exec %v scale %v", exec, scale) // token 0: 2 ≥ 1; token 1: 0.5 ≥ -1
	}
	rs.Layers[0].Attn.B = []float32{1.5, 0}
	rs.Decide(0, Attn, x, 2, exec, scale, scratch)
	if !cmp.Equal(exec, []bool{false, true}) {
		t.Errorf("skipgpt attn with bias: exec %v", exec) // token 0: 2 < 2.5
	}
	rs.Decide(0, MLP, x, 2, exec, scale, scratch) // no MLP router: dense
	if !cmp.Equal(exec, []bool{true, true}) {
		t.Errorf("skipgpt mlp: exec %v", exec)
	}

	mod := &Routers{Method: MoD, Layers: []Layer{{
		Attn:     &Router{Dim: 2, Out: 1, W: []float32{0.5, 0}, B: []float32{1}},
		AttnPred: &Router{Dim: 2, Out: 1, W: []float32{1, 1}, B: []float32{-2}},
		MLP:      NewRouter(2, 1), MLPPred: NewRouter(2, 1),
	}}}
	mod.Decide(0, Attn, x, 2, exec, scale, scratch)
	if !cmp.Equal(exec, []bool{true, false}) || !cmp.Equal(scale, []float32{1.5, 0.5}) {
		t.Errorf("mod attn: exec %v scale %v", exec, scale) // pred 1 > 0, -2.5; r = 1.5, 0.5
	}
}

// Encode and Decode round-trip routers through bytes with extra metadata,
// and refuse a key that would overwrite the file's own.
func TestEncodeDecode(t *testing.T) {
	for _, m := range Methods {
		rs := testRouters(m, 4, 8)
		b, err := Encode(rs, map[string]string{"losses": "[1,2]"})
		if err != nil {
			t.Fatal(err)
		}
		got, meta, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if diff := cmp.Diff(rs, got); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", m, diff)
		}
		if meta["losses"] != "[1,2]" || meta[metaMethod] != string(m) {
			t.Errorf("%s: metadata %v", m, meta)
		}
	}
	if _, err := Encode(testRouters(MoD, 4, 8), map[string]string{metaMethod: "x"}); err == nil {
		t.Error("Encode let extra metadata overwrite the method")
	}
}
