package ops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/kernels/dynamic"
)

// withRouters attaches the dynamic-pruning routers an lrmc export wrote into
// a Hugging Face directory (routers.safetensors beside the weights), so
// that perplexity and speed run the model with its compute-skipping
// forward passes as the run that trained them did. The directory's digest
// covers the file, so the cache keys follow it. Other ops run the weights
// alone, as llama.cpp and transformers do.
func withRouters(dir string, m *Model) (*Model, error) {
	path := filepath.Join(dir, dynamic.FileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	rs, err := dynamic.Load(path, m.LM.Config.Layers, m.LM.Config.Dim)
	if err != nil {
		return nil, err
	}
	m.Routers = rs
	return m, nil
}

// denseInput is llamaInput for ops that run the dense forward pass only
// (multiple-choice scoring, generation, recovery): a model with routers is
// refused by name rather than silently evaluated without them. The
// compiler rejects such runs of a dynamic method first; this catches a
// routed model read from disk.
func denseInput(c *executor.Call, i int) (*Model, error) {
	m, err := llamaInput(c, i)
	if err == nil && m.Routers != nil {
		return nil, fmt.Errorf("%s runs the dense forward pass; input %d is a model with %s routers, which lrmc evaluates by perplexity and speed (or lrmc generate) only", c.Node.Op, i, m.Routers.Method)
	}
	return m, err
}
