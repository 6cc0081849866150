package ops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/kernels/dynamic"
	"lrmc/kernels/generate"
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

// routedDecoder is generate's Options.Decoder for a model with routers:
// its compute-skipping decoder; nil for a dense model.
func routedDecoder(m *Model) (func(int) generate.Stepper, error) {
	if m.Routers == nil {
		return nil, nil
	}
	dm, err := dynamic.New(m.LM, m.Routers)
	if err != nil {
		return nil, err
	}
	return func(maxSeq int) generate.Stepper { return dm.NewDecoder(maxSeq) }, nil
}

// denseInput is llamaInput for recovery, which trains the weights alone:
// a model with routers is refused by name rather than trained without
// them. The compiler rejects recovery of a dynamic method's run first;
// this catches a routed model read from disk.
func denseInput(c *executor.Call, i int) (*Model, error) {
	m, err := llamaInput(c, i)
	if err == nil && m.Routers != nil {
		return nil, fmt.Errorf("%s trains the weights alone; input %d is a model with %s routers, which dynamic pruning trains with its own stage-2 LoRA (prune.loraSteps)", c.Node.Op, i, m.Routers.Method)
	}
	return m, err
}
