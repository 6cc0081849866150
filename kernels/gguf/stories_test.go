package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
)

// llama2cWeights slices stories260K.bin by the layout in its README (a
// 7-int32 header, then float32 arrays) into the GGUF tensor each array became.
func llama2cWeights(t *testing.T, bin []byte) map[string][]byte {
	t.Helper()
	var cfg [7]int32
	if err := binary.Read(bytes.NewReader(bin), binary.LittleEndian, &cfg); err != nil {
		t.Fatal(err)
	}
	dim, hidden, layers, heads, kvHeads, vocab := int(cfg[0]), int(cfg[1]), int(cfg[2]), int(cfg[3]), int(cfg[4]), int(cfg[5])
	if want := [7]int32{64, 172, 5, 8, 4, 512, 512}; cfg != want {
		t.Fatalf("stories260K.bin config %v, want %v", cfg, want)
	}
	kvDim := dim * kvHeads / heads
	off := 28
	next := func(n int) []byte { // n float32 values
		b := bin[off : off+4*n]
		off += 4 * n
		return b
	}
	perLayer := func(n int) [][]byte {
		out := make([][]byte, layers)
		for l := range out {
			out[l] = next(n)
		}
		return out
	}
	w := map[string][]byte{}
	emb := next(vocab * dim)
	w["token_embd.weight"] = emb
	w["output.weight"] = emb // the classifier is shared with the embedding
	for _, p := range []struct {
		name string
		n    int
	}{
		{"attn_norm", dim}, {"attn_q", dim * dim}, {"attn_k", kvDim * dim}, {"attn_v", kvDim * dim},
		{"attn_output", dim * dim}, {"ffn_norm", dim},
		{"ffn_gate", hidden * dim}, {"ffn_down", dim * hidden}, {"ffn_up", hidden * dim},
	} {
		for l, b := range perLayer(p.n) {
			w[fmt.Sprintf("blk.%d.%s.weight", l, p.name)] = b
		}
	}
	w["output_norm.weight"] = next(dim)
	// What remains is freq_cis_real and freq_cis_imag, 2 × seq_len × head_size/2.
	if rest := len(bin) - off; rest != 2*4*512*(dim/heads)/2 {
		t.Fatalf("%d bytes left after the weights, want the two RoPE tables", rest)
	}
	return w
}

func TestStories260K(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	bin, err := os.ReadFile(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Version != 3 || f.Alignment != 32 || len(f.Metadata) != 23 || len(f.Tensors) != 48 {
		t.Fatalf("version %d, alignment %d, %d keys, %d tensors; want 3, 32, 23, 48", f.Version, f.Alignment, len(f.Metadata), len(f.Tensors))
	}

	for key, want := range map[string]uint32{
		"llama.context_length": 512, "llama.embedding_length": 64, "llama.block_count": 5,
		"llama.feed_forward_length": 172, "llama.rope.dimension_count": 8, "llama.attention.head_count": 8,
		"llama.attention.head_count_kv": 4, "llama.vocab_size": 512, "general.file_type": 0,
		"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
	} {
		if got, err := f.Uint32(key); err != nil || got != want {
			t.Errorf("Uint32(%q) = %d, %v; want %d", key, got, err, want)
		}
	}
	for key, want := range map[string]float32{"llama.attention.layer_norm_rms_epsilon": 1e-5, "llama.rope.freq_base": 10000} {
		if got, err := f.Float32(key); err != nil || got != want {
			t.Errorf("Float32(%q) = %g, %v; want %g", key, got, err, want)
		}
	}
	for key, want := range map[string]string{"general.architecture": "llama", "general.name": "stories260K", "tokenizer.ggml.model": "llama"} {
		if got, err := f.String(key); err != nil || got != want {
			t.Errorf("String(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	if b, err := f.Bool("tokenizer.ggml.add_bos_token"); err != nil || !b {
		t.Errorf("add_bos_token = %v, %v", b, err)
	}

	// The vocabulary against tok512.bin: from id 259 on, the same pieces
	// (spaces spelled U+2581) with the same scores.
	tokens, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil {
		t.Fatal(err)
	}
	scores, err := f.Float32s("tokenizer.ggml.scores")
	if err != nil {
		t.Fatal(err)
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 512 || len(scores) != 512 || len(types) != 512 {
		t.Fatalf("vocabulary arrays of %d, %d, %d entries, want 512", len(tokens), len(scores), len(types))
	}
	if diff := cmp.Diff([]string{"<unk>", "<s>", "</s>", "<0x00>"}, tokens[:4]); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]int32{2, 3, 3, 6}, types[:4]); diff != "" {
		t.Error(diff)
	}
	tok, err := os.ReadFile(shareddata.Path(t, "models", "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	pos := 4
	for id := range 512 {
		score := math.Float32frombits(binary.LittleEndian.Uint32(tok[pos:]))
		n := int(binary.LittleEndian.Uint32(tok[pos+4:]))
		piece := string(tok[pos+8 : pos+8+n])
		pos += 8 + n
		if id < 259 {
			continue
		}
		if want := strings.ReplaceAll(piece, " ", "\u2581"); tokens[id] != want || scores[id] != score {
			t.Errorf("token %d = %q score %g; tok512.bin has %q score %g", id, tokens[id], scores[id], want, score)
		}
	}

	// Every tensor, F32, holds exactly the llama2.c file's floats.
	want := llama2cWeights(t, bin)
	if len(want) != len(f.Tensors) {
		t.Fatalf("%d tensors in the .bin mapping, %d in the GGUF", len(want), len(f.Tensors))
	}
	for _, tn := range f.Tensors {
		w, ok := want[tn.Name]
		if !ok {
			t.Errorf("unexpected tensor %q", tn.Name)
			continue
		}
		if tn.Type != TypeF32 {
			t.Errorf("tensor %q has type %s, want F32", tn.Name, tn.Type)
		}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if len(got)*4 != len(w) {
			t.Errorf("tensor %q: %d values, the .bin has %d", tn.Name, len(got), len(w)/4)
			continue
		}
		for i, v := range got {
			if math.Float32bits(v) != binary.LittleEndian.Uint32(w[4*i:]) {
				t.Errorf("tensor %q[%d] = %g, .bin has %g", tn.Name, i, v, math.Float32frombits(binary.LittleEndian.Uint32(w[4*i:])))
				break
			}
		}
	}
	for name, shape := range map[string][]int{
		"token_embd.weight": {512, 64}, "output.weight": {512, 64}, "output_norm.weight": {64},
		"blk.0.attn_k.weight": {32, 64}, "blk.4.ffn_down.weight": {64, 172}, "blk.2.ffn_up.weight": {172, 64},
	} {
		tn, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("tensor %q missing", name)
		}
		if diff := cmp.Diff(shape, tn.Shape()); diff != "" {
			t.Errorf("%s shape (-want +got):\n%s", name, diff)
		}
	}
	if tn, _ := f.Tensor("blk.0.attn_k.weight"); !cmp.Equal(tn.Dims, []uint64{64, 32}) {
		t.Errorf("blk.0.attn_k.weight Dims = %v, want ne order [64 32]", tn.Dims)
	}
}

// The writer reproduces the converter's file byte for byte from what the
// reader returns: key order, value types, tensor order, offsets and padding.
func TestStories260KRewriteIsByteIdentical(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := t.TempDir() + "/copy.gguf"
	if err := WriteFile(out, f.Metadata, f.Tensors); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, orig) {
		i := 0
		for i < len(got) && i < len(orig) && got[i] == orig[i] {
			i++
		}
		t.Fatalf("rewrite differs from the original at byte %d (sizes %d and %d)", i, len(got), len(orig))
	}
}
