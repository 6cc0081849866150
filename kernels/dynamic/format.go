package dynamic

import (
	"fmt"
	"strconv"

	"lrmc/kernels/safetensors"
)

// FileName is the routers' file, saved beside the model's weights.
const FileName = "routers.safetensors"

// Metadata keys of the routers' safetensors header. The file is lrmc's
// own: neither llama.cpp nor transformers runs per-token routers, so a
// loader that only knows the model ignores this file and runs it dense.
const (
	metaFormat = "lrmc.dynamic.format"
	metaMethod = "lrmc.dynamic.method"
	metaSkip   = "lrmc.dynamic.skip_ratio"
	metaKV     = "lrmc.dynamic.kv_rule"
	metaLayers = "lrmc.dynamic.layers"
	metaNote   = "note"

	formatVersion = "1"
	// Note is the message written into the file and printed by tools that
	// meet a model with routers.
	Note = "lrmc dynamic-pruning routers: only lrmc runs them (lrmc generate, and recipes through lrmc apply); llama.cpp and transformers load the weights beside this file as the dense model and ignore the routers"
)

// tensorName is the name of router name of layer i in the file, in Hugging
// Face's module naming.
func tensorName(i int, name string) string {
	return fmt.Sprintf("model.layers.%d.router.%s", i, name)
}

// Tensors returns every router as float32 tensors NAME.weight [Out, Dim]
// and NAME.bias [Out], and the header metadata naming the method.
func (rs *Routers) Tensors() ([]safetensors.Tensor, map[string]string) {
	var ts []safetensors.Tensor
	for i := range rs.Layers {
		for _, r := range rs.Layers[i].routers() {
			if r.r == nil {
				continue
			}
			n := tensorName(i, r.name)
			ts = append(ts, safetensors.F32(n+".weight", []int{r.r.Out, r.r.Dim}, r.r.W),
				safetensors.F32(n+".bias", []int{r.r.Out}, r.r.B))
		}
	}
	meta := map[string]string{
		metaFormat: formatVersion,
		metaMethod: string(rs.Method),
		metaSkip:   strconv.FormatFloat(rs.Skip, 'g', -1, 64),
		metaKV:     rs.Method.KVRule().String(),
		metaLayers: strconv.Itoa(len(rs.Layers)),
		metaNote:   Note,
	}
	return ts, meta
}

// Save writes rs to path atomically.
func Save(path string, rs *Routers) error {
	ts, meta := rs.Tensors()
	if err := safetensors.WriteFile(path, ts, meta); err != nil {
		return fmt.Errorf("dynamic: saving routers: %w", err)
	}
	return nil
}

// Load reads routers from path and checks them against a model of the given
// layers and hidden size. Every tensor is copied out of the mapping.
func Load(path string, layers, dim int) (*Routers, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rs, err := fromFile(f, layers, dim)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

func fromFile(f *safetensors.File, layers, dim int) (*Routers, error) {
	meta := f.Metadata
	if meta[metaFormat] != formatVersion {
		return nil, fmt.Errorf("dynamic: header field %s is %q, this lrmc reads %q", metaFormat, meta[metaFormat], formatVersion)
	}
	rs := &Routers{Method: Method(meta[metaMethod])}
	if !rs.Method.Valid() {
		return nil, fmt.Errorf("dynamic: header field %s is %q, want one of %v", metaMethod, meta[metaMethod], Methods)
	}
	skip, err := strconv.ParseFloat(meta[metaSkip], 64)
	if err != nil {
		return nil, fmt.Errorf("dynamic: header field %s: %w", metaSkip, err)
	}
	rs.Skip = skip
	if n, err := strconv.Atoi(meta[metaLayers]); err != nil || n != layers {
		return nil, fmt.Errorf("dynamic: header field %s is %q, the model has %d layers", metaLayers, meta[metaLayers], layers)
	}
	rs.Layers = make([]Layer, layers)
	known := map[string]bool{}
	for i := range rs.Layers {
		l := &rs.Layers[i]
		slots := map[string]**Router{"attn": &l.Attn, "mlp": &l.MLP, "block": &l.Block, "attn_predictor": &l.AttnPred, "mlp_predictor": &l.MLPPred}
		for _, name := range []string{"attn", "mlp", "block", "attn_predictor", "mlp_predictor"} {
			n := tensorName(i, name)
			wt, okW := f.Tensor(n + ".weight")
			bt, okB := f.Tensor(n + ".bias")
			if !okW && !okB {
				continue
			}
			if !okW || !okB {
				return nil, fmt.Errorf("dynamic: router %s has a weight or a bias but not both", n)
			}
			known[n+".weight"], known[n+".bias"] = true, true
			if len(wt.Shape) != 2 || len(bt.Shape) != 1 || bt.Shape[0] != wt.Shape[0] {
				return nil, fmt.Errorf("dynamic: router %s has weight shape %v and bias shape %v, want [out, dim] and [out]", n, wt.Shape, bt.Shape)
			}
			w, err := wt.Float32()
			if err != nil {
				return nil, fmt.Errorf("dynamic: tensor %s.weight: %w", n, err)
			}
			b, err := bt.Float32()
			if err != nil {
				return nil, fmt.Errorf("dynamic: tensor %s.bias: %w", n, err)
			}
			*slots[name] = &Router{Out: wt.Shape[0], Dim: wt.Shape[1], W: append([]float32(nil), w...), B: append([]float32(nil), b...)}
		}
	}
	for _, n := range f.Names() {
		if !known[n] {
			return nil, fmt.Errorf("dynamic: unexpected tensor %s", n)
		}
	}
	if err := rs.Validate(layers, dim); err != nil {
		return nil, err
	}
	return rs, nil
}
