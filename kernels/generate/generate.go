// Package generate is the text generation loop of llama2.c's run.c as a
// library function: prompt forcing, sampling, stop on BOS, streaming pieces.
package generate

import (
	"errors"
	"fmt"

	"lrmc/kernels/llama"
	"lrmc/kernels/sample"
)

// Tokenizer is what generation needs from a tokenizer; *llama2c.Tokenizer
// implements it.
type Tokenizer interface {
	Encode(text string, bos, eos bool) []int32
	// SafePiece is the printable text of tok following prev.
	SafePiece(prev, tok int32) string
	BOS() int32
}

// Options control a generation run.
type Options struct {
	// Steps is the number of positions run, prompt included, as run.c's -n:
	// 0 or more than the model's SeqLen means SeqLen.
	Steps int
	// Temperature 0 is greedy decoding; TopP in (0, 1) enables nucleus
	// sampling. Seed seeds the sampler (see sample.New).
	Temperature, TopP float32
	Seed              uint64
}

// Generate runs m on the encoded prompt (with BOS) and continues it, with
// run.c's semantics: the token at position pos is fed and, while pos is
// inside the prompt, the next prompt token is forced, afterwards sampled;
// generation stops after Steps positions or when BOS is chosen. Each chosen
// token's printable piece is passed to emit (when non-nil) as soon as it is
// chosen, prompt tokens included. The result is every token: BOS, the
// prompt, and each token chosen (a terminating BOS excluded), so it holds
// Steps+1 tokens when generation did not stop early.
func Generate(m *llama.Model, tok Tokenizer, prompt string, opt Options, emit func(piece string)) ([]int32, error) {
	promptToks := tok.Encode(prompt, true, false)
	if len(promptToks) == 0 {
		return nil, errors.New("generate: the prompt encodes to no tokens")
	}
	for i, id := range promptToks {
		if id < 0 || int(id) >= m.Config.Vocab {
			return nil, fmt.Errorf("generate: prompt token %d (at %d) outside the model's vocabulary [0, %d)", id, i, m.Config.Vocab)
		}
	}
	steps := opt.Steps
	if steps < 0 {
		return nil, fmt.Errorf("generate: steps is %d, must not be negative", steps)
	}
	if steps == 0 || steps > m.Config.SeqLen {
		steps = m.Config.SeqLen
	}
	dec := llama.NewDecoder(m, steps)
	smp := sample.New(opt.Temperature, opt.TopP, opt.Seed)
	// steps may be a header's whole context (millions); out grows as tokens come.
	out := append(make([]int32, 0, min(steps+1, 4096)), promptToks[0])
	token := promptToks[0]
	for pos := 0; pos < steps; pos++ {
		logits := dec.Step(token, pos)
		var next int32
		if pos+1 < len(promptToks) {
			next = promptToks[pos+1]
		} else {
			next = smp.Sample(logits)
		}
		if next == tok.BOS() {
			break
		}
		out = append(out, next)
		if emit != nil {
			emit(tok.SafePiece(token, next))
		}
		token = next
	}
	return out, nil
}
