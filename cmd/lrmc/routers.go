package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"lrmc/executor/ops"
	"lrmc/kernels/dynamic"
	"lrmc/kernels/generate"
)

// routed is a model's dynamic-pruning routers found beside its weights
// (routers.safetensors, as lrmc's exports write it), and the
// compute-skipping decoder generate runs with them.
type routed struct {
	path string
	dm   *dynamic.Model
	dec  *dynamic.Decoder // the last decoder made, for its counts
}

// findRouters loads routers.safetensors from m's Hugging Face directory or
// beside its .bin or .gguf file; nil when there is none.
func findRouters(m *generate.Model) (*routed, error) {
	dir := m.Path
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, dynamic.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	rs, err := dynamic.Load(path, m.LM.Config.Layers, m.LM.Config.Dim)
	if err != nil {
		return nil, err
	}
	dm, err := dynamic.New(m.LM, rs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &routed{path: path, dm: dm}, nil
}

// decoder is generate's Options.Decoder for the routed model.
func (r *routed) decoder(maxSeq int) generate.Stepper {
	r.dec = r.dm.NewDecoder(maxSeq)
	return r.dec
}

// announce says which routers run and that only lrmc runs them.
func (r *routed) announce(w io.Writer) {
	rs := r.dm.Routers
	fmt.Fprintf(w, "lrmc: %s: %s routers trained for skip ratio %g (KV rule %s): decoding with the compute-skipping decoder; --dense ignores them\nlrmc: note: %s\n",
		r.path, rs.Method, rs.Skip, rs.Method.KVRule(), dynamic.Note)
}

// summary is what the routers skipped over the positions decoded.
func (r *routed) summary() *ops.DynamicEval {
	if r.dec == nil {
		return nil
	}
	return ops.NewDynamicEval(r.dm.Routers, r.dec.Stats())
}
