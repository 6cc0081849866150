package llama

import "testing"

func TestCloneAndTensorsRoundTrip(t *testing.T) {
	for _, c := range []Config{testConfig, func() Config { c := testConfig; c.SharedClassifier = false; return c }()} {
		m := randModel(c, 11)
		cl := m.Clone()
		cl.Layers[0].Wq[0] += 1
		cl.Embedding[3] += 1
		if m.Layers[0].Wq[0] == cl.Layers[0].Wq[0] || m.Embedding[3] == cl.Embedding[3] {
			t.Fatal("Clone shares weights with the original")
		}
		if c.SharedClassifier && &cl.Classifier[0] != &cl.Embedding[0] {
			t.Error("Clone unshared a shared classifier")
		}
		byName := map[string][]float32{}
		for _, ts := range m.Tensors() {
			if _, dup := byName[ts.Name]; dup {
				t.Fatalf("tensor %s listed twice", ts.Name)
			}
			byName[ts.Name] = ts.Data
		}
		back, err := FromTensors(m.Config, func(n string) ([]float32, bool) { d, ok := byName[n]; return d, ok })
		if err != nil {
			t.Fatal(err)
		}
		toks := []int32{1, 2, 3, 4}
		a, b := m.Forward(toks, 1, 4), back.Forward(toks, 1, 4)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("logit %d differs after Tensors/FromTensors", i)
			}
		}
		delete(byName, "layers.1.w2")
		if _, err := FromTensors(m.Config, func(n string) ([]float32, bool) { d, ok := byName[n]; return d, ok }); err == nil {
			t.Error("a missing tensor was accepted")
		}
	}
}
