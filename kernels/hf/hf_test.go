package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/safetensors"
)

// spec is a small checkpoint of one architecture: its config.json, written
// with the field names and kinds of values real checkpoints of that family
// have, and the facts the float64 reference needs, stated independently of
// the parser.
type spec struct {
	arch                    string
	config                  string
	hidden, inter, layers   int
	heads, kvHeads, headDim int
	vocab                   int
	eps, theta              float64
	tied, bias, qkNorm      bool
	llama3                  []float64 // factor, low, high, original context; nil for none
	dtype                   safetensors.DType
	shardBytes              int64 // 0: one model.safetensors
}

var specs = []spec{
	{
		arch: ArchLlama, hidden: 32, inter: 88, layers: 3, heads: 2, kvHeads: 1, headDim: 16, vocab: 64,
		eps: 1e-5, theta: 500000, llama3: []float64{8, 1, 4, 64}, dtype: safetensors.DTypeF32,
		// Llama 3.1's config.json, shrunk. With 16-wide heads and an
		// original context of 64 the llama3 scaling keeps pair 0,
		// interpolates pair 1 (wavelength 32.3) and divides the rest.
		config: `{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": [2, 3, 4],
  "hidden_act": "silu",
  "hidden_size": 32,
  "initializer_range": 0.02,
  "intermediate_size": 88,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 2,
  "num_hidden_layers": 3,
  "num_key_value_heads": 1,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64, "rope_type": "llama3"},
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "float32",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 64
}`,
	},
	{
		arch: ArchMistral, hidden: 32, inter: 56, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 48,
		eps: 1e-5, theta: 1e6, dtype: safetensors.DTypeBF16,
		config: `{
  "architectures": ["MistralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "head_dim": null,
  "hidden_act": "silu",
  "hidden_size": 32,
  "initializer_range": 0.02,
  "intermediate_size": 56,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "sliding_window": 4096,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.42.0.dev0",
  "use_cache": true,
  "vocab_size": 48
}`,
	},
	{
		arch: ArchQwen2, hidden: 32, inter: 72, layers: 3, heads: 4, kvHeads: 2, headDim: 8, vocab: 56,
		eps: 1e-6, theta: 1e6, tied: true, bias: true, dtype: safetensors.DTypeF32, shardBytes: 12000,
		// Qwen2.5-0.5B's config.json, shrunk: tied embeddings, and
		// sharded here to exercise the index.
		config: `{
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 5,
  "eos_token_id": 6,
  "hidden_act": "silu",
  "hidden_size": 32,
  "initializer_range": 0.02,
  "intermediate_size": 72,
  "max_position_embeddings": 32768,
  "max_window_layers": 24,
  "model_type": "qwen2",
  "num_attention_heads": 4,
  "num_hidden_layers": 3,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.40.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 56
}`,
	},
	{
		arch: ArchQwen3, hidden: 32, inter: 48, layers: 3, heads: 4, kvHeads: 2, headDim: 16, vocab: 40,
		eps: 1e-6, theta: 1e6, tied: true, qkNorm: true, dtype: safetensors.DTypeF16,
		// Qwen3-0.6B's config.json, shrunk: heads (4 × 16) wider than the
		// residual stream (32), as in the real model (16 × 128 vs 1024).
		config: `{
  "architectures": ["Qwen3ForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 7,
  "eos_token_id": 8,
  "head_dim": 16,
  "hidden_act": "silu",
  "hidden_size": 32,
  "initializer_range": 0.02,
  "intermediate_size": 48,
  "layer_types": ["full_attention", "full_attention", "full_attention"],
  "max_position_embeddings": 40960,
  "max_window_layers": 28,
  "model_type": "qwen3",
  "num_attention_heads": 4,
  "num_hidden_layers": 3,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000,
  "sliding_window": null,
  "tie_word_embeddings": true,
  "torch_dtype": "float16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 40
}`,
	},
}

// hfTensor is one tensor of a test checkpoint, with its values exactly as
// stored (already rounded to the checkpoint's dtype).
type hfTensor struct {
	name  string
	shape []int
	data  []float32
}

// roundTo rounds x to what dt can store, nearest-even, as torch does.
func roundTo(x float32, dt safetensors.DType) float32 {
	switch dt {
	case safetensors.DTypeBF16:
		b := math.Float32bits(x)
		b += 0x7fff + (b>>16)&1
		return math.Float32frombits(b &^ 0xffff)
	case safetensors.DTypeF16:
		// Values here are O(1): normal halves, 10 mantissa bits. Adding
		// and subtracting c = 1.5·2^(e+42), whose float64 ulp is 2^(e−10),
		// the half ulp of x ∈ [2^e, 2^(e+1)), rounds x to it, nearest-even.
		e := math.Ilogb(float64(x))
		c := 1.5 * math.Ldexp(1, e+42)
		return float32((float64(x) + c) - c)
	}
	return x
}

// genTensors makes random weights in Hugging Face's layout for s.
func genTensors(s spec, seed uint64) []hfTensor {
	r := rand.New(rand.NewPCG(seed, 3))
	var ts []hfTensor
	add := func(name string, scale, mean float64, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = roundTo(float32(mean+scale*r.NormFloat64()), s.dtype)
		}
		ts = append(ts, hfTensor{name, shape, v})
	}
	q, kv := s.heads*s.headDim, s.kvHeads*s.headDim
	add("model.embed_tokens.weight", 1, 0, s.vocab, s.hidden)
	for i := range s.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", 0.2, 1, s.hidden)
		add(p+"self_attn.q_proj.weight", 1/math.Sqrt(float64(s.hidden)), 0, q, s.hidden)
		add(p+"self_attn.k_proj.weight", 1/math.Sqrt(float64(s.hidden)), 0, kv, s.hidden)
		add(p+"self_attn.v_proj.weight", 1/math.Sqrt(float64(s.hidden)), 0, kv, s.hidden)
		if s.bias {
			add(p+"self_attn.q_proj.bias", 0.5, 0, q)
			add(p+"self_attn.k_proj.bias", 0.5, 0, kv)
			add(p+"self_attn.v_proj.bias", 0.5, 0, kv)
		}
		if s.qkNorm {
			add(p+"self_attn.q_norm.weight", 0.2, 1, s.headDim)
			add(p+"self_attn.k_norm.weight", 0.2, 1, s.headDim)
		}
		add(p+"self_attn.o_proj.weight", 1/math.Sqrt(float64(q)), 0, s.hidden, q)
		add(p+"post_attention_layernorm.weight", 0.2, 1, s.hidden)
		add(p+"mlp.gate_proj.weight", 1/math.Sqrt(float64(s.hidden)), 0, s.inter, s.hidden)
		add(p+"mlp.up_proj.weight", 1/math.Sqrt(float64(s.hidden)), 0, s.inter, s.hidden)
		add(p+"mlp.down_proj.weight", 1/math.Sqrt(float64(s.inter)), 0, s.hidden, s.inter)
	}
	add("model.norm.weight", 0.2, 1, s.hidden)
	if !s.tied {
		add("lm_head.weight", 1/math.Sqrt(float64(s.hidden)), 0, s.vocab, s.hidden)
	}
	return ts
}

// writeCheckpoint writes config and ts as a checkpoint directory, in s's
// dtype and sharding.
func writeCheckpoint(t *testing.T, dir, config string, s spec, ts []hfTensor) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var st []safetensors.Tensor
	for _, x := range ts {
		tt, err := safetensors.FromFloat32(x.name, s.dtype, x.shape, x.data)
		if err != nil {
			t.Fatal(err)
		}
		st = append(st, tt)
	}
	meta := map[string]string{"format": "pt"}
	var err error
	if s.shardBytes > 0 {
		var shards []string
		shards, err = safetensors.WriteSharded(dir, st, meta, s.shardBytes)
		if err == nil && len(shards) < 2 {
			t.Fatalf("%s: expected several shards, got %v", s.arch, shards)
		}
	} else {
		err = safetensors.WriteFile(filepath.Join(dir, safetensors.SingleFileName), st, meta)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// refForward is a float64 forward pass for one sequence written from
// transformers' modeling code (LlamaModel, MistralModel, Qwen2Model,
// Qwen3Model), reading the weights by their Hugging Face names: RMSNorm as
// w·x/√(mean(x²)+eps); q/k/v projections with Qwen2's biases; Qwen3's q_norm
// and k_norm over each head; rotary embedding as q·cos + rotate_half(q)·sin
// with cos and sin of cat(freqs, freqs), inverse frequencies rescaled by
// _compute_llama3_parameters; repeat_kv for grouped heads; causal softmax
// attention scaled by 1/√head_dim; SiLU-gated MLP; lm_head or, when tied,
// the embedding.
func refForward(s spec, ts []hfTensor, tokens []int32) [][]float64 {
	w := map[string][]float64{}
	for _, x := range ts {
		v := make([]float64, len(x.data))
		for i, f := range x.data {
			v[i] = float64(f)
		}
		w[x.name] = v
	}
	hd, T := s.headDim, len(tokens)
	linear := func(name string, x []float64, out int) []float64 {
		m := w[name]
		y := make([]float64, out)
		for o := range y {
			for i, v := range x {
				y[o] += m[o*len(x)+i] * v
			}
		}
		return y
	}
	rms := func(x, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+s.eps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = g[i] * x[i] * r
		}
		return y
	}
	invFreq := make([]float64, hd/2)
	for i := range invFreq {
		invFreq[i] = 1 / math.Pow(s.theta, float64(2*i)/float64(hd))
		if s.llama3 != nil {
			factor, low, high, old := s.llama3[0], s.llama3[1], s.llama3[2], s.llama3[3]
			wavelen := 2 * math.Pi / invFreq[i]
			if wavelen > old/low {
				invFreq[i] /= factor
			} else if wavelen >= old/high {
				smooth := (old/wavelen - low) / (high - low)
				invFreq[i] = (1-smooth)*invFreq[i]/factor + smooth*invFreq[i]
			}
		}
	}
	// applyRope rotates every head of x at position pos.
	applyRope := func(x []float64, pos int) {
		for h := 0; h < len(x); h += hd {
			head := slices.Clone(x[h : h+hd])
			for j := range hd {
				f := invFreq[j%(hd/2)] * float64(pos)
				rot := -head[(j+hd/2)%hd] // rotate_half: cat(-x2, x1)
				if j >= hd/2 {
					rot = head[j-hd/2]
				}
				x[h+j] = head[j]*math.Cos(f) + rot*math.Sin(f)
			}
		}
	}
	perHeadNorm := func(x []float64, name string) {
		for h := 0; h < len(x); h += hd {
			copy(x[h:h+hd], rms(x[h:h+hd], w[name]))
		}
	}
	x := make([][]float64, T)
	for t, tok := range tokens {
		x[t] = slices.Clone(w["model.embed_tokens.weight"][int(tok)*s.hidden : (int(tok)+1)*s.hidden])
	}
	q, kv := s.heads*hd, s.kvHeads*hd
	for l := range s.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		Q, K, V := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			h := rms(x[t], w[p+"input_layernorm.weight"])
			Q[t], K[t], V[t] = linear(p+"self_attn.q_proj.weight", h, q), linear(p+"self_attn.k_proj.weight", h, kv), linear(p+"self_attn.v_proj.weight", h, kv)
			if s.bias {
				for i := range Q[t] {
					Q[t][i] += w[p+"self_attn.q_proj.bias"][i]
				}
				for i := range K[t] {
					K[t][i] += w[p+"self_attn.k_proj.bias"][i]
					V[t][i] += w[p+"self_attn.v_proj.bias"][i]
				}
			}
			if s.qkNorm {
				perHeadNorm(Q[t], p+"self_attn.q_norm.weight")
				perHeadNorm(K[t], p+"self_attn.k_norm.weight")
			}
			applyRope(Q[t], t)
			applyRope(K[t], t)
		}
		for t := range T {
			att := make([]float64, q)
			for h := range s.heads {
				kh := h / (s.heads / s.kvHeads) // repeat_kv
				sc := make([]float64, t+1)
				mx := math.Inf(-1)
				for u := range sc {
					for i := range hd {
						sc[u] += Q[t][h*hd+i] * K[u][kh*hd+i]
					}
					sc[u] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[u])
				}
				var z float64
				for u := range sc {
					sc[u] = math.Exp(sc[u] - mx)
					z += sc[u]
				}
				for u := range sc {
					for i := range hd {
						att[h*hd+i] += sc[u] / z * V[u][kh*hd+i]
					}
				}
			}
			o := linear(p+"self_attn.o_proj.weight", att, s.hidden)
			for i := range o {
				x[t][i] += o[i]
			}
			h := rms(x[t], w[p+"post_attention_layernorm.weight"])
			g, u := linear(p+"mlp.gate_proj.weight", h, s.inter), linear(p+"mlp.up_proj.weight", h, s.inter)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			o = linear(p+"mlp.down_proj.weight", g, s.hidden)
			for i := range o {
				x[t][i] += o[i]
			}
		}
	}
	head := "lm_head.weight"
	if s.tied {
		head = "model.embed_tokens.weight"
	}
	out := make([][]float64, T)
	for t := range T {
		out[t] = linear(head, rms(x[t], w["model.norm.weight"]), s.vocab)
	}
	return out
}

func randTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 5))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

// relErr is max|got−want| / max|want| over all positions.
func relErr(got []float32, want [][]float64) float64 {
	var diff, scale float64
	V := len(want[0])
	for p, row := range want {
		for i, w := range row {
			diff = math.Max(diff, math.Abs(float64(got[p*V+i])-w))
			scale = math.Max(scale, math.Abs(w))
		}
	}
	return diff / scale
}

func TestLoadAgainstFloat64(t *testing.T) {
	for _, s := range specs {
		t.Run(s.arch, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			ts := genTensors(s, 1)
			writeCheckpoint(t, dir, s.config, s, ts)
			m, cfg, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Architecture != s.arch || m.Config.Layers != s.layers || m.Config.HeadDim() != s.headDim ||
				m.Config.QDim() != s.heads*s.headDim || m.Config.SharedClassifier != s.tied {
				t.Fatalf("config %+v for %s", m.Config, s.arch)
			}
			const T = 12
			tokens := randTokens(2*T, s.vocab, 2)
			logits := m.Forward(tokens, 2, T)
			var worst float64
			for b := range 2 {
				worst = math.Max(worst, relErr(logits[b*T*s.vocab:(b+1)*T*s.vocab], refForward(s, ts, tokens[b*T:(b+1)*T])))
			}
			// float32 arithmetic through 2–3 blocks: a few ulps of the
			// largest logit.
			if worst > 1e-5 {
				t.Fatalf("max relative logit error vs float64 reference %.3g > 1e-5", worst)
			}
			t.Logf("%s (%s weights): max relative logit error vs float64 reference %.3g", s.arch, s.dtype, worst)
		})
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	for _, s := range specs {
		if err := os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(s.config), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := ReadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if c.NumHiddenLayers != s.layers || c.HiddenSize != s.hidden || c.VocabSize != s.vocab || c.HeadDim != s.headDim ||
			c.RMSNormEps != s.eps || c.RopeTheta != s.theta || c.Dir != dir {
			t.Errorf("%s: parsed %+v", s.arch, c)
		}
	}
	// The Llama 3.1 one, field by field.
	os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(specs[0].config), 0o644)
	c, _ := ReadConfig(dir)
	want := llama.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}
	if c.RopeScaling != want || c.BOSTokenID != 1 || !slices.Equal(c.EOSTokenIDs, []int{2, 3, 4}) ||
		c.MaxPositionEmbeddings != 131072 || c.TorchDType != "float32" || c.ModelType != "llama" {
		t.Errorf("Llama 3.1 config parsed as %+v", c)
	}
	// Mistral's sliding window caps the context llama.Model is exact for.
	os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(specs[1].config), 0o644)
	c, _ = ReadConfig(dir)
	if lc, _ := c.LlamaConfig(); c.SlidingWindow != 4096 || lc.SeqLen != 4096 || !slices.Equal(c.EOSTokenIDs, []int{2}) {
		t.Errorf("Mistral: sliding window %d, SeqLen %d, eos %v", c.SlidingWindow, lc.SeqLen, c.EOSTokenIDs)
	}
	// Qwen2's window is off unless use_sliding_window says so.
	os.WriteFile(filepath.Join(dir, ConfigFileName), []byte(specs[2].config), 0o644)
	c, _ = ReadConfig(dir)
	if c.SlidingWindow != 0 {
		t.Errorf("Qwen2 without use_sliding_window: sliding window %d", c.SlidingWindow)
	}
	// transformers 5 keeps rope settings in rope_parameters.
	v5 := strings.Replace(specs[0].config, `"rope_scaling"`, `"rope_parameters"`, 1)
	v5 = strings.Replace(v5, `"rope_type": "llama3"}`, `"rope_type": "llama3", "rope_theta": 500000.0}`, 1)
	v5 = strings.Replace(v5, `"rope_theta": 500000.0,`, ``, 1)
	if c, err := ParseConfig([]byte(v5)); err != nil || c.RopeScaling != want || c.RopeTheta != 500000 {
		t.Errorf("rope_parameters: %+v, %v", c, err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFileName)
	for _, c := range []struct{ edit, want string }{
		{`"LlamaForCausalLM" -> "GPT2LMHeadModel"`,
			"architecture GPT2LMHeadModel is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"},
		{`"rope_type": "llama3" -> "rope_type": "yarn"`, `rope_scaling type "yarn" is not supported (only "llama3")`},
		{`"attention_bias": false -> "attention_bias": true`,
			"attention_bias is true: LlamaForCausalLM attention biases (o_proj included) are not supported"},
		{`"mlp_bias": false -> "mlp_bias": true`, "mlp_bias is true: MLP biases are not supported"},
		{`"hidden_size": 32, -> ` + "``" + ` and "vocab_size": 64 -> "x": 1`, "missing hidden_size, vocab_size"},
		{`"num_key_value_heads": 1 -> "num_key_value_heads": 3`, "llama: invalid config: heads 2 is not a multiple of kv_heads 3"},
		{`"low_freq_factor": 1.0, -> ` + "``", "rope_scaling low_freq_factor is missing or not a number"},
		// Hostile sizes fail before the planner plans a node per layer or
		// anything allocates a table by them.
		{`"num_hidden_layers": 3 -> "num_hidden_layers": 1000000000`,
			"num_hidden_layers is 1000000000, more than the limit of 4096 (far above any released model): refusing to size anything by it"},
		{`"max_position_embeddings": 131072 -> "max_position_embeddings": 2147483647`,
			"max_position_embeddings is 2147483647, more than the limit of 16777216 (far above any released model): refusing to size anything by it"},
		{`"vocab_size": 64 -> "vocab_size": 1000000000`,
			"vocab_size is 1000000000, more than the limit of 16777216 (far above any released model): refusing to size anything by it"},
	} {
		doc := specs[0].config
		for _, e := range strings.Split(c.edit, " and ") {
			from, to, _ := strings.Cut(e, " -> ")
			to = strings.Trim(to, "`")
			if !strings.Contains(doc, from) {
				t.Fatalf("edit %q does not apply", e)
			}
			doc = strings.Replace(doc, from, to, 1)
		}
		os.WriteFile(path, []byte(doc), 0o644)
		_, err := ReadConfig(dir)
		if want := "hf: " + path + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", c.edit, err, want)
		}
	}
}

// TestLoadErrors: a checkpoint that does not match its config fails naming
// the file and the tensor.
func TestLoadErrors(t *testing.T) {
	s := specs[0]
	file := func(dir string) string { return filepath.Join(dir, safetensors.SingleFileName) }
	for _, c := range []struct {
		name string
		edit func([]hfTensor) []hfTensor
		want func(dir string) string
	}{
		{"missing", func(ts []hfTensor) []hfTensor {
			return slices.DeleteFunc(ts, func(x hfTensor) bool { return x.name == "model.layers.1.mlp.up_proj.weight" })
		}, func(dir string) string {
			return "hf: " + file(dir) + `: tensor "model.layers.1.mlp.up_proj.weight" is missing (LlamaForCausalLM with 3 layers)`
		}},
		{"extra layer", func(ts []hfTensor) []hfTensor {
			return append(ts, hfTensor{"model.layers.3.mlp.up_proj.weight", []int{88, 32}, make([]float32, 88*32)})
		}, func(dir string) string {
			return "hf: " + file(dir) + `: unexpected tensor "model.layers.3.mlp.up_proj.weight": not part of a LlamaForCausalLM with this config.json`
		}},
		{"bias on llama", func(ts []hfTensor) []hfTensor {
			return append(ts, hfTensor{"model.layers.0.self_attn.q_proj.bias", []int{32}, make([]float32, 32)})
		}, func(dir string) string {
			return "hf: " + file(dir) + `: unexpected tensor "model.layers.0.self_attn.q_proj.bias": not part of a LlamaForCausalLM with this config.json`
		}},
		{"wrong shape", func(ts []hfTensor) []hfTensor {
			for i := range ts {
				if ts[i].name == "model.layers.2.self_attn.k_proj.weight" {
					ts[i].shape = []int{32, 16}
				}
			}
			return ts
		}, func(dir string) string {
			return "hf: " + file(dir) + `: tensor "model.layers.2.self_attn.k_proj.weight" has shape [32 16], config.json implies [16 32]`
		}},
	} {
		dir := filepath.Join(t.TempDir(), "ckpt")
		writeCheckpoint(t, dir, s.config, s, c.edit(genTensors(s, 1)))
		_, _, err := Load(dir)
		if err == nil || err.Error() != c.want(dir) {
			t.Errorf("%s:\n got %v\nwant %s", c.name, err, c.want(dir))
		}
	}

	// In a sharded checkpoint the error names the shard.
	q := specs[2]
	dir := filepath.Join(t.TempDir(), "ckpt")
	ts := genTensors(q, 1)
	k := slices.IndexFunc(ts, func(x hfTensor) bool { return x.name == "model.layers.1.self_attn.k_proj.weight" })
	ts[k].shape = []int{len(ts[k].data)}
	writeCheckpoint(t, dir, q.config, q, ts)
	ix, err := safetensors.OpenIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	shard := ix.Shard(ts[k].name)
	ix.Close()
	_, _, err = Load(dir)
	want := fmt.Sprintf("hf: %s: tensor %q has shape [512], config.json implies [16 32]", shard, ts[k].name)
	if !strings.Contains(shard, "model-0000") || err == nil || err.Error() != want {
		t.Errorf("sharded:\n got %v\nwant %s", err, want)
	}

	// A tied checkpoint may carry lm_head.weight; it is ignored, as
	// transformers ignores it.
	dir = filepath.Join(t.TempDir(), "ckpt")
	ts = append(genTensors(q, 1), hfTensor{"lm_head.weight", []int{q.vocab, q.hidden}, make([]float32, q.vocab*q.hidden)})
	q.shardBytes = 0
	writeCheckpoint(t, dir, q.config, q, ts)
	if m, _, err := Load(dir); err != nil || &m.Classifier[0] != &m.Embedding[0] {
		t.Errorf("tied checkpoint with lm_head: %v", err)
	}
}

// logitsEqual fails unless a and b give bit-identical logits.
func logitsEqual(t *testing.T, what string, a, b *llama.Model) {
	t.Helper()
	tokens := randTokens(10, a.Config.Vocab, 9)
	la, lb := a.Forward(tokens, 1, 10), b.Forward(tokens, 1, 10)
	for i := range la {
		if math.Float32bits(la[i]) != math.Float32bits(lb[i]) {
			t.Fatalf("%s: logit %d: %g vs %g", what, i, la[i], lb[i])
		}
	}
}

func TestSaveRoundTrip(t *testing.T) {
	names := map[safetensors.DType]string{safetensors.DTypeF32: "float32", safetensors.DTypeBF16: "bfloat16", safetensors.DTypeF16: "float16"}
	for _, s := range specs {
		t.Run(s.arch, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(root, "src")
			writeCheckpoint(t, src, s.config, s, genTensors(s, 1))
			os.WriteFile(filepath.Join(src, "tokenizer.json"), []byte(`{"model":{}}`), 0o644)
			m, cfg, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			// In the checkpoint's own dtype the values survive exactly,
			// sharded or not.
			for _, shard := range []int64{0, 5000} {
				out := filepath.Join(root, fmt.Sprint("out", shard))
				if err := Save(out, m, cfg, names[s.dtype], shard); err != nil {
					t.Fatal(err)
				}
				back, bcfg, err := Load(out)
				if err != nil {
					t.Fatal(err)
				}
				logitsEqual(t, fmt.Sprintf("save/load, shards of %d bytes", shard), m, back)
				if bcfg.Architecture != s.arch || bcfg.BOSTokenID != cfg.BOSTokenID || bcfg.TorchDType != names[s.dtype] {
					t.Errorf("saved config %+v", bcfg)
				}
				_, idxErr := os.Stat(filepath.Join(out, safetensors.IndexFileName))
				if (shard > 0) != (idxErr == nil) {
					t.Errorf("shards of %d bytes: index present = %v", shard, idxErr == nil)
				}
				if b, err := os.ReadFile(filepath.Join(out, "tokenizer.json")); err != nil || string(b) != `{"model":{}}` {
					t.Errorf("tokenizer.json not copied: %q, %v", b, err)
				}
			}

			// Depth-pruned: the first and the last layer.
			k, err := m.Keep([]int{0, s.layers - 1})
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(root, "pruned")
			if err := Save(out, k, cfg, "float32", 0); err != nil {
				t.Fatal(err)
			}
			back, bcfg, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			logitsEqual(t, "pruned save/load", k, back)
			if bcfg.NumHiddenLayers != 2 {
				t.Errorf("pruned config says %d layers", bcfg.NumHiddenLayers)
			}
			var doc map[string]any
			b, _ := os.ReadFile(filepath.Join(out, ConfigFileName))
			json.Unmarshal(b, &doc)
			if lt, ok := doc["layer_types"]; ok && len(lt.([]any)) != 2 {
				t.Errorf("layer_types not resized: %v", lt)
			}
			if doc["transformers_version"] == nil || doc["initializer_range"] != 0.02 {
				t.Errorf("fields lrmc does not interpret were lost: %v", doc)
			}
		})
	}
}

// TestSaveOverwrites: saving over an existing checkpoint replaces it whole,
// leaving no stale shard or temporary directory behind.
func TestSaveOverwrites(t *testing.T) {
	s := specs[2]
	root := t.TempDir()
	dir := filepath.Join(root, "ckpt")
	writeCheckpoint(t, dir, s.config, s, genTensors(s, 1))
	m, cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := m.Keep([]int{1})
	if err := Save(dir, k, cfg, "bfloat16", 0); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{ConfigFileName, safetensors.SingleFileName}) {
		t.Errorf("directory holds %v", names)
	}
	if top, _ := os.ReadDir(root); len(top) != 1 {
		t.Errorf("temporary directories left beside the checkpoint: %v", top)
	}
	back, _, err := Load(dir)
	if err != nil || back.Config.Layers != 1 {
		t.Fatalf("reloaded: %v", err)
	}
}

func TestSaveErrors(t *testing.T) {
	s := specs[2] // Qwen2
	dir := filepath.Join(t.TempDir(), "ckpt")
	writeCheckpoint(t, dir, s.config, s, genTensors(s, 1))
	m, cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")

	noBias := *m
	noBias.Config.QKVBias = false
	noBias.Layers = slices.Clone(m.Layers)
	for i := range noBias.Layers {
		noBias.Layers[i].Bq, noBias.Layers[i].Bk, noBias.Layers[i].Bv = nil, nil, nil
	}
	perLayer := *m
	perLayer.Layers = slices.Clone(m.Layers)
	perLayer.Layers[1].W1 = perLayer.Layers[1].W1[:10*32]
	eps := *m
	eps.Config.NormEps = 1e-5
	for _, c := range []struct {
		m     *llama.Model
		dtype string
		want  string
	}{
		{&noBias, "float32", "hf: save " + out + ": Qwen2ForCausalLM cannot express a model with QKVBias=false"},
		{&perLayer, "float32", "hf: save " + out + ": the model has no single Hugging Face config: llama: tensor layers.1.w1 has 320 floats, want 2304"},
		{&eps, "float32", "hf: save " + out + ": model's norm eps 1e-05 differs from config.json's rms_norm_eps 1e-06"},
		{m, "int8", "hf: save " + out + `: dtype "int8" is not one of float32, bfloat16, float16`},
	} {
		if err := Save(out, c.m, cfg, c.dtype, 0); err == nil || err.Error() != c.want {
			t.Errorf("got %v\nwant %s", err, c.want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed saves left %s behind: %v", out, err)
	}
}

// TestSaveLlama2c: stories260K (llama2.c's interleaved RoPE, no config.json)
// written as a Llama checkpoint loads back as the same function: its q/k
// rows are permuted to rotate-half order, which only reorders sums.
func TestSaveLlama2c(t *testing.T) {
	m, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "stories260K")
	if err := Save(dir, m, nil, "float32", 0); err != nil {
		t.Fatal(err)
	}
	back, cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != ArchLlama || cfg.HiddenSize != 64 || cfg.NumKeyValueHeads != 4 || cfg.RMSNormEps != 1e-5 ||
		cfg.MaxPositionEmbeddings != 512 || !cfg.TieWordEmbeddings || back.Config.RopeStyle != llama.RopeHalf {
		t.Fatalf("config %+v", cfg)
	}
	const T = 32
	tokens := randTokens(T, 512, 3)
	want, got := m.Forward(tokens, 1, T), back.Forward(tokens, 1, T)
	ref := make([][]float64, T)
	for p := range ref {
		ref[p] = make([]float64, 512)
		for i := range ref[p] {
			ref[p][i] = float64(want[p*512+i])
		}
	}
	if e := relErr(got, ref); e > 1e-5 {
		t.Fatalf("logits differ from the llama2.c model's by %.3g of their scale", e)
	} else {
		t.Logf("stories260K via Hugging Face layout: max relative logit difference %.3g", e)
	}
}

// TestSaveBuiltConfig: a Config assembled in code rather than read from a
// file still yields a config.json transformers can dispatch on.
func TestSaveBuiltConfig(t *testing.T) {
	s := specs[2]
	src := filepath.Join(t.TempDir(), "src")
	writeCheckpoint(t, src, s.config, s, genTensors(s, 1))
	m, _, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Architecture: ArchQwen2, HiddenSize: 32, IntermediateSize: 72, NumHiddenLayers: 3, NumAttentionHeads: 4,
		NumKeyValueHeads: 2, HeadDim: 8, VocabSize: 56, MaxPositionEmbeddings: 32768, RMSNormEps: 1e-6, RopeTheta: 1e6}
	out := filepath.Join(t.TempDir(), "out")
	if err := Save(out, m, cfg, "float32", 0); err != nil {
		t.Fatal(err)
	}
	back, bcfg, err := Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if bcfg.Architecture != ArchQwen2 || bcfg.ModelType != "qwen2" || !bcfg.TieWordEmbeddings {
		t.Errorf("saved config %+v", bcfg)
	}
	logitsEqual(t, "built config", m, back)
}

// TestSaveWithoutConfig: without a config, the architecture follows from
// the model's features (a GGUF qwen2/qwen3 model, say, becomes
// Qwen2ForCausalLM/Qwen3ForCausalLM).
func TestSaveWithoutConfig(t *testing.T) {
	for _, s := range specs[2:] {
		src := filepath.Join(t.TempDir(), "src")
		writeCheckpoint(t, src, s.config, s, genTensors(s, 1))
		m, _, err := Load(src)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if err := Save(out, m, nil, "float32", 0); err != nil {
			t.Fatal(err)
		}
		back, cfg, err := Load(out)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Architecture != s.arch || cfg.HeadDim != s.headDim || cfg.RMSNormEps != s.eps || cfg.RopeTheta != s.theta {
			t.Errorf("%s saved without a config: %+v", s.arch, cfg)
		}
		logitsEqual(t, s.arch, m, back)
	}
}

// TestLoadDType: a checkpoint loaded 16-bit holds exactly the values Load
// gives rounded to that type (the same values when the checkpoint is stored
// in it), computes bit for bit what the widened model computes, and saves
// back in its own dtype byte for byte.
func TestLoadDType(t *testing.T) {
	names := map[safetensors.DType]string{safetensors.DTypeF32: "float32", safetensors.DTypeBF16: "bfloat16", safetensors.DTypeF16: "float16"}
	for _, s := range specs {
		t.Run(s.arch, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(root, "src")
			writeCheckpoint(t, src, s.config, s, genTensors(s, 1))
			f32, _, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			auto, cfg, err := LoadDType(src, "auto")
			if err != nil {
				t.Fatal(err)
			}
			// auto follows config.json's torch_dtype (one spec declares
			// bfloat16 but stores float32).
			wantAuto := llama.Float32
			if td := llama.DType(cfg.TorchDType); td == llama.BFloat16 || td == llama.Float16 {
				wantAuto = td
			}
			if auto.DType() != wantAuto {
				t.Fatalf("auto: dtype %s, want torch_dtype's %s", auto.DType(), wantAuto)
			}
			stored := llama.DType(names[s.dtype])
			if stored == wantAuto {
				// Values stored in the checkpoint's dtype are kept exactly.
				logitsEqual(t, "auto vs float32", auto.Float32(), f32)
			}
			logitsEqual(t, "auto 16-bit vs widened", auto, auto.Float32())

			for _, dt := range []llama.DType{llama.BFloat16, llama.Float16} {
				m, _, err := LoadDType(src, string(dt))
				if err != nil {
					t.Fatal(err)
				}
				want, err := f32.WithDType(dt)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want.Layers {
					for _, p := range [][2][]uint16{{m.Layers[i].Half.Wq, want.Layers[i].Half.Wq}, {m.Layers[i].Half.W2, want.Layers[i].Half.W2}} {
						if !slices.Equal(p[0], p[1]) {
							t.Fatalf("%s: layer %d: loaded weights are not the float32 ones rounded", dt, i)
						}
					}
				}
				if !slices.Equal(m.Half.Classifier, want.Half.Classifier) || s.tied != (&m.Half.Classifier[0] == &m.Half.Embedding[0]) {
					t.Fatalf("%s: classifier differs or is not tied as the config says", dt)
				}
				logitsEqual(t, string(dt), m, want)
			}

			if stored == llama.Float32 || stored != wantAuto {
				return
			}
			// Saved in its own dtype, a 16-bit model's file holds the
			// checkpoint's bytes.
			out := filepath.Join(root, "out")
			if err := Save(out, auto, cfg, names[s.dtype], 0); err != nil {
				t.Fatal(err)
			}
			a, err := safetensors.OpenDir(src)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := safetensors.OpenDir(out)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for _, name := range a.Names() {
				ta, _ := a.Tensor(name)
				tb, ok := b.Tensor(name)
				if !ok || tb.DType != ta.DType || !slices.Equal(ta.Data, tb.Data) {
					t.Fatalf("saved %s differs from the checkpoint's (present %v)", name, ok)
				}
			}
			// Saved as float32, it reloads to the widened model.
			if err := Save(out, auto, cfg, "float32", 0); err != nil {
				t.Fatal(err)
			}
			back, _, err := Load(out)
			if err != nil {
				t.Fatal(err)
			}
			logitsEqual(t, "saved as float32", back, auto.Float32())
		})
	}
}

func TestLoadDTypeUnknown(t *testing.T) {
	dir := t.TempDir()
	s := specs[0]
	writeCheckpoint(t, dir, s.config, s, genTensors(s, 1))
	_, _, err := LoadDType(dir, "int4")
	if want := "hf: load " + dir + `: llama: dtype "int4" is not one of float32, bfloat16, float16`; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestLoadDTypeMapsWeights: weights stored in the requested 16-bit type are
// not copied but alias the mapped checkpoint (Model.Mapped owns them), and
// evicting a block's pages changes no value; a checkpoint that needs
// converting, or a float32 load, maps nothing.
func TestLoadDTypeMapsWeights(t *testing.T) {
	names := map[safetensors.DType]llama.DType{safetensors.DTypeBF16: llama.BFloat16, safetensors.DTypeF16: llama.Float16}
	mapped := 0
	for _, s := range specs {
		stored, ok := names[s.dtype]
		if !ok {
			continue
		}
		src := t.TempDir()
		writeCheckpoint(t, src, s.config, s, genTensors(s, 1))
		m, _, err := LoadDType(src, string(stored))
		if err != nil {
			t.Fatal(err)
		}
		if m.Mapped == nil {
			t.Fatalf("%s: a %s checkpoint loaded as %s is not mapped", s.arch, s.dtype, stored)
		}
		mapped++
		copied := m.Clone() // heap copies: what the weights were before eviction
		for i := range m.Layers {
			for _, w := range [][]uint16{m.Layers[i].Half.Wq, m.Layers[i].Half.W2, m.Half.Embedding} {
				if !m.Mapped.Evict(unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), 2*len(w))) {
					t.Fatalf("%s: layer %d: a 16-bit weight is not in the checkpoint's mapping", s.arch, i)
				}
			}
			if m.Mapped.Evict(unsafe.Slice((*byte)(unsafe.Pointer(&copied.Layers[i].Half.Wq[0])), 2)) {
				t.Fatalf("%s: the mapping claims a heap copy", s.arch)
			}
			m.EvictLayer(i)
		}
		logitsEqual(t, s.arch+" after eviction", m, copied)

		other := llama.Float16
		if stored == llama.Float16 {
			other = llama.BFloat16
		}
		for _, dt := range []llama.DType{other, llama.Float32} {
			c, _, err := LoadDType(src, string(dt))
			if err != nil {
				t.Fatal(err)
			}
			if c.Mapped != nil {
				t.Errorf("%s: a %s checkpoint loaded as %s (converted) keeps the mapping", s.arch, s.dtype, dt)
			}
		}
	}
	if mapped == 0 {
		t.Fatal("no 16-bit spec: the test checks nothing")
	}
}
