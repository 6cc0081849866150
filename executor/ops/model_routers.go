package ops

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

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
