package generate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lrmc/kernels/chattemplate"
	"lrmc/kernels/gguf"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/modelref"
	"lrmc/kernels/tokenizer"
)

// Tokenizer is what generation needs from a model's tokenizer.
type Tokenizer interface {
	Detokenizer
	// EncodePrompt encodes plain text as the model's own runtime does
	// before generating: run.c with BOS for llama2.c, transformers'
	// tokenizer(text) (the post-processor's special tokens) for Hugging
	// Face tokenizers, llama.cpp's add_bos_token for GGUF.
	EncodePrompt(text string) []int32
	// EncodeRendered encodes chat-template output, which already holds
	// every special token the model expects.
	EncodeRendered(text string) []int32
}

// Model is a checkpoint loaded for generation, with its tokenizer, chat
// template and end-of-sequence ids.
type Model struct {
	LM  *llama.Model
	Tok Tokenizer
	// Template is the model's chat template, nil when it has none;
	// Specials are the bos_token and eos_token strings it is given.
	Template *chattemplate.Template
	Specials chattemplate.Specials
	// EOS are the ids that end a generation: BOS for llama2.c (run.c stops
	// there), the tokenizer's and the configs' eos_token_id for Hugging
	// Face checkpoints (as transformers' generate does), llama.cpp's
	// end-of-generation ids for GGUF.
	EOS []int32
	// Format is "llama2c", "gguf" or "hf"; Path the resolved file or
	// directory.
	Format, Path string
}

// Load resolves ref (a llama2.c .bin, a .gguf file, a Hugging Face
// directory, or hf:ORG/NAME[@REV] in the local hub cache; see modelref)
// and loads the model with its own tokenizer, or the one at tokenizerPath
// (a Hugging Face directory, a .gguf or a llama2.c .bin) when set. dtype is
// how the weights are held ("" or "float32", "bfloat16", "float16").
func Load(ref, tokenizerPath, dtype string) (*Model, error) {
	res, err := modelref.Resolve(ref)
	if err != nil {
		return nil, err
	}
	out := &Model{Path: res.Path}
	var cfg *hf.Config
	switch res.Kind {
	case modelref.Llama2c:
		out.Format = "llama2c"
		if out.LM, err = llama2c.Load(res.Path); err != nil {
			return nil, err
		}
		if dtype != "" {
			dt, err := llama.ParseDType(dtype)
			if err != nil {
				return nil, err
			}
			if out.LM, err = out.LM.WithDType(dt); err != nil {
				return nil, err
			}
		}
		if tokenizerPath == "" {
			if tokenizerPath, err = llama2c.FindTokenizer(res.Path, out.LM.Config.Vocab); err != nil {
				return nil, err
			}
		}
	case modelref.GGUF:
		out.Format = "gguf"
		if out.LM, _, err = ggufmodel.LoadDType(res.Path, dtype); err != nil {
			return nil, err
		}
		if tokenizerPath == "" {
			tokenizerPath = res.Path
		}
	case modelref.HFDir:
		out.Format = "hf"
		if out.LM, cfg, err = hf.LoadDType(res.Path, dtype); err != nil {
			return nil, err
		}
		if tokenizerPath == "" {
			if _, err := os.Stat(filepath.Join(res.Path, "tokenizer.json")); err != nil {
				return nil, fmt.Errorf("%s: no tokenizer.json in the checkpoint; name a tokenizer", res.Path)
			}
			tokenizerPath = res.Path
		}
	default:
		return nil, fmt.Errorf("%s: model kind %s is not supported", ref, res.Kind)
	}
	if err := out.loadTokenizer(tokenizerPath); err != nil {
		return nil, err
	}
	if cfg != nil {
		// transformers' generate stops at generation_config.json's
		// eos_token_id, which defaults to config.json's.
		for _, id := range cfg.EOSTokenIDs {
			out.addEOS(int32(id))
		}
		ids, err := generationEOS(filepath.Join(res.Path, "generation_config.json"))
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			out.addEOS(id)
		}
	}
	return out, nil
}

func (m *Model) addEOS(id int32) {
	if id >= 0 && !slices.Contains(m.EOS, id) {
		m.EOS = append(m.EOS, id)
	}
}

// loadTokenizer loads the tokenizer at path, telling its format from it.
func (m *Model) loadTokenizer(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	switch ext := strings.ToLower(filepath.Ext(path)); {
	case st.IsDir():
		t, err := tokenizer.Load(path)
		if err != nil {
			return err
		}
		m.Tok = hfTokenizer{t}
		tmpl, sp, err := chattemplate.FromTokenizerConfig(filepath.Join(path, "tokenizer_config.json"))
		switch {
		case err == nil:
			m.Template, m.Specials = tmpl, sp
		case errors.Is(err, chattemplate.ErrNoTemplate), errors.Is(err, fs.ErrNotExist):
		default:
			return err
		}
		if id, ok := t.EOS(); ok {
			m.addEOS(id)
		}
	case ext == ".gguf":
		_, meta, err := ggufmodel.ReadConfig(path)
		if err != nil {
			return err
		}
		t, err := tokenizer.FromGGUF(meta.Tokenizer)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m.Tok = hfTokenizer{t}
		for _, kv := range meta.Tokenizer {
			switch kv.Key {
			case "tokenizer.chat_template":
				if src, ok := kv.Value.(string); ok && src != "" {
					if m.Template, err = chattemplate.New(src); err != nil {
						return fmt.Errorf("%s: tokenizer.chat_template: %w", path, err)
					}
				}
			case "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id":
				// llama.cpp ends generation at eos, eot and eom.
				id, ok := metaID(kv.Value)
				if !ok {
					return fmt.Errorf("%s: %s is %T, not a token id", path, kv.Key, kv.Value)
				}
				m.addEOS(id)
			}
		}
		// llama.cpp also counts these tokens as end of generation,
		// whatever the metadata says (llama_vocab's special_eog_ids).
		for _, s := range []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>"} {
			if id, ok := t.TokenID(s); ok {
				m.addEOS(id)
			}
		}
		if id, ok := t.BOS(); ok {
			m.Specials.BOS = t.Tokens([]int32{id})[0]
		}
		if id, ok := t.EOS(); ok {
			m.Specials.EOS = t.Tokens([]int32{id})[0]
		}
	case ext == ".bin":
		t, err := llama2c.LoadTokenizer(path, m.LM.Config.Vocab)
		if err != nil {
			return err
		}
		m.Tok = llama2cTokenizer{t}
		m.addEOS(t.BOS()) // run.c stops when the model chooses BOS
	default:
		return fmt.Errorf("%s: cannot tell the tokenizer's format: want a Hugging Face directory, a .gguf or a llama2.c .bin", path)
	}
	return nil
}

// metaID reads a token id from GGUF metadata, which converters write in
// integer types of various widths.
func metaID(v any) (int32, bool) {
	id, ok := gguf.Int64(v)
	if !ok || id < 0 || id > math.MaxInt32 {
		return 0, false
	}
	return int32(id), true
}

// generationEOS reads eos_token_id (one id or a list) from a
// generation_config.json; a missing file has none.
func generationEOS(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc struct {
		EOS json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.EOS) == 0 || string(doc.EOS) == "null" {
		return nil, nil
	}
	var one int32
	if json.Unmarshal(doc.EOS, &one) == nil {
		return []int32{one}, nil
	}
	var list []int32
	if err := json.Unmarshal(doc.EOS, &list); err != nil {
		return nil, fmt.Errorf("%s: eos_token_id: want an id or a list of ids: %w", path, err)
	}
	return list, nil
}

// ChatOptions shape a chat prompt.
type ChatOptions struct {
	// System is a system message put before the user's; "" for none.
	System string
	// Thinking sets the template's enable_thinking; nil leaves it unset,
	// so the template's default applies.
	Thinking *bool
}

// RenderChat renders user as the user's message with the model's chat
// template and the assistant's generation prompt, as transformers'
// apply_chat_template(add_generation_prompt=True) does.
func (m *Model) RenderChat(user string, opt ChatOptions) (string, error) {
	if m.Template == nil {
		return "", fmt.Errorf("%s: the model has no chat template", m.Path)
	}
	var msgs []chattemplate.Message
	if opt.System != "" {
		msgs = append(msgs, chattemplate.Message{Role: "system", Content: opt.System})
	}
	msgs = append(msgs, chattemplate.Message{Role: "user", Content: user})
	o := chattemplate.Options{AddGenerationPrompt: true, BOSToken: m.Specials.BOS, EOSToken: m.Specials.EOS}
	if opt.Thinking != nil {
		o.Vars = map[string]any{"enable_thinking": *opt.Thinking}
	}
	s, err := m.Template.Render(msgs, o)
	if err != nil {
		return "", fmt.Errorf("%s: chat template: %w", m.Path, err)
	}
	return s, nil
}

// llama2cTokenizer is llama2.c's tokenizer with run.c's text: the printable
// pieces, a space after BOS dropped, BOS itself never printed.
type llama2cTokenizer struct{ t *llama2c.Tokenizer }

func (a llama2cTokenizer) EncodePrompt(s string) []int32   { return a.t.Encode(s, true, false) }
func (a llama2cTokenizer) EncodeRendered(s string) []int32 { return a.t.Encode(s, false, false) }

func (a llama2cTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	prev := int32(-1)
	for _, id := range ids {
		if id != a.t.BOS() && id >= 0 && int(id) < a.t.Vocab() {
			b.WriteString(a.t.SafePiece(prev, id))
		}
		prev = id
	}
	return b.String()
}

// hfTokenizer is a Hugging Face (or GGUF) tokenizer; text drops special
// tokens, as lm-evaluation-harness decodes generations.
type hfTokenizer struct{ t *tokenizer.Tokenizer }

func (a hfTokenizer) EncodePrompt(s string) []int32   { return a.t.Encode(s, true) }
func (a hfTokenizer) EncodeRendered(s string) []int32 { return a.t.Encode(s, false) }
func (a hfTokenizer) Decode(ids []int32) string       { return a.t.Decode(ids, true) }
