package generate

import (
	"path/filepath"

	"lrmc/kernels/llama"
)

// Attach gives a model loaded elsewhere (the executor loads, prunes and
// recovers models itself) what Load would give it: the tokenizer at
// tokenizerPath (a Hugging Face directory, a .gguf or a llama2.c .bin),
// its chat template and end ids. configEOS are config.json's
// eos_token_id of a Hugging Face checkpoint and modelDir its directory,
// whose generation_config.json may name more ("" for other formats).
func Attach(lm *llama.Model, tokenizerPath string, configEOS []int, modelDir string) (*Model, error) {
	m := &Model{LM: lm, Path: tokenizerPath}
	if err := m.loadTokenizer(tokenizerPath); err != nil {
		return nil, err
	}
	for _, id := range configEOS {
		m.addEOS(int32(id))
	}
	if modelDir != "" {
		ids, err := generationEOS(filepath.Join(modelDir, "generation_config.json"))
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			m.addEOS(id)
		}
	}
	return m, nil
}
