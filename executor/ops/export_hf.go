package ops

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
	"lrmc/planner"
)

// maxShardBytes is where Hugging Face exports start a new shard; 5 GB is
// transformers' own default for save_pretrained.
const maxShardBytes = 5_000_000_000

// ggufToHF maps GGUF architectures to Hugging Face's.
var ggufToHF = map[string]string{"llama": hf.ArchLlama, "qwen2": hf.ArchQwen2, "qwen3": hf.ArchQwen3}

// exportHF writes a model as a Hugging Face checkpoint directory that loads
// alone: config.json with the model's (pruned) shape and its bos/eos ids,
// the weights in the requested dtype, the tokenizer files (a llama2.c or
// GGUF tokenizer converted to tokenizer.json) and
// generation_config.json. Inputs: model, tokenizer source.
type exportHF struct{ rawBytes }

// Version 2: tokenizer files for llama2.c and GGUF sources, bos/eos ids
// in config.json, generation_config.json.
func (exportHF) Version() int { return 2 }

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
	if err := writeTokenizerFiles(dir, p.TokenizerFormat, tokPath, m); err != nil {
		return nil, err
	}
	if err := writeSpecialIDs(dir); err != nil {
		return nil, err
	}
	return executor.PackDir(dir)
}

// writeTokenizerFiles converts a llama2.c tokenizer, or a GGUF model's
// tokenizer (with its chat template), to tokenizer.json and
// tokenizer_config.json in dir, unless dir has them.
func writeTokenizerFiles(dir, format, tokPath string, m *Model) error {
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
		return nil
	}
	var js, cfg []byte
	switch format {
	case "llama2c":
		t, err := llama2c.LoadTokenizer(tokPath, m.LM.Config.Vocab)
		if err != nil {
			return err
		}
		v := tokenizer.SentencePieceFromLlama2c(t)
		if js, err = tokenizer.SentencePieceJSON(v); err != nil {
			return fmt.Errorf("%s: %w", tokPath, err)
		}
		if cfg, err = tokenizer.SentencePieceConfig(v, m.LM.Config.SeqLen, ""); err != nil {
			return err
		}
	case "gguf":
		_, meta, err := ggufmodel.ReadConfig(tokPath)
		if err != nil {
			return err
		}
		if js, cfg, err = tokenizer.GGUFToJSON(meta.Tokenizer, m.LM.Config.SeqLen); err != nil {
			return fmt.Errorf("%s: %w", tokPath, err)
		}
	default:
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), js, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
}

// writeSpecialIDs names the tokenizer's BOS and EOS in config.json and
// generation_config.json (kernels/hf.WriteSpecialIDs), when dir has a
// tokenizer.
func writeSpecialIDs(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		return nil
	}
	t, err := tokenizer.Load(dir)
	if err != nil {
		return fmt.Errorf("export hf: the exported tokenizer does not load: %w", err)
	}
	ids := hf.SpecialIDs{BOS: -1, EOS: -1}
	if id, ok := t.BOS(); ok {
		ids.BOS = id
	}
	if id, ok := t.EOS(); ok {
		ids.EOS = id
	}
	return hf.WriteSpecialIDs(dir, ids)
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
