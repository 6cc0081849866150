package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/kernels/hf"
	"lrmc/planner"
)

// maxShardBytes is where Hugging Face exports start a new shard; 5 GB is
// transformers' own default for save_pretrained.
const maxShardBytes = 5_000_000_000

// ggufToHF maps GGUF architectures to Hugging Face's.
var ggufToHF = map[string]string{"llama": hf.ArchLlama, "qwen2": hf.ArchQwen2, "qwen3": hf.ArchQwen3}

// exportHF writes a model as a Hugging Face checkpoint directory: config.json
// with the model's (pruned) shape, the weights in the requested dtype, and
// the tokenizer files. Inputs: model, tokenizer source.
type exportHF struct{ rawBytes }

func (exportHF) Version() int { return 1 }

func (exportHF) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ExportParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return nil, err
	}
	cfg := m.HF
	if cfg == nil && m.GGUF != nil {
		arch, ok := ggufToHF[m.GGUF.Architecture]
		if !ok {
			return nil, fmt.Errorf("GGUF architecture %q has no Hugging Face counterpart here", m.GGUF.Architecture)
		}
		if cfg, err = hf.NewConfig(arch, m.LM.Config); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "lrmc-export-hf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "hf")
	if err := hf.Save(dir, m.LM, cfg, p.DType, maxShardBytes); err != nil {
		return nil, err
	}
	// A tokenizer directory named apart from the checkpoint (a synthetic
	// model's, say) travels with the export, so the directory loads alone.
	if st, err := os.Stat(tokPath); err == nil && st.IsDir() {
		for _, name := range hf.CompanionFiles {
			src := filepath.Join(tokPath, name)
			dst := filepath.Join(dir, name)
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			if _, err := os.Stat(src); err != nil {
				continue
			}
			if err := CopyFile(src, dst); err != nil {
				return nil, err
			}
		}
	}
	return executor.PackDir(dir)
}

// CopyFile copies src to dst (a file inside an export being staged, which
// the executor moves into place whole).
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
