// Package generate is lrmc's text generation loop, shared by `lrmc
// generate` and evaluation: a prompt of token ids is prefilled, then tokens
// are sampled (greedily, or with seeded temperature and nucleus sampling)
// until an end-of-sequence id, a stop sequence or the token limit.
//
// The greedy path is llama2.c's run.c token for token: the same forward pass
// (llama.Decoder) over the same positions, and argmax with the lowest id on
// ties. Stop sequences are cut from the text as lm-evaluation-harness cuts
// its "until" strings.
package generate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"lrmc/kernels/llama"
	"lrmc/kernels/sample"
)

// Detokenizer turns generated ids into text.
type Detokenizer interface {
	// Decode returns the text of ids, without special tokens. Decoding a
	// run of ids that ends inside a multi-byte character may end in
	// U+FFFD, as Hugging Face tokenizers do.
	Decode(ids []int32) string
}

// StopReason says why generation ended.
type StopReason string

const (
	// StopEOS: the model chose one of Options.EOS.
	StopEOS StopReason = "eos"
	// StopSequence: the text came to hold one of Options.Stop.
	StopSequence StopReason = "stop_sequence"
	// StopMaxTokens: Options.MaxNew tokens were generated, or the model's
	// context is full.
	StopMaxTokens StopReason = "max_tokens"
)

// Options control a generation run.
type Options struct {
	// MaxNew is the most tokens generated; 0 means as many as the model's
	// context holds after the prompt. It is also capped there.
	MaxNew int
	// Temperature 0 is greedy decoding (argmax, lowest id on ties);
	// otherwise TopP in (0, 1) enables nucleus sampling, and Seed seeds the
	// sampler (see sample.New): the same seed gives the same tokens.
	Temperature, TopP float32
	Seed              uint64
	// Stop ends generation as soon as the continuation's text holds one of
	// these strings; Result.Text is cut before the first one.
	Stop []string
	// EOS ids end generation when chosen; the id is not part of the result.
	EOS []int32
	// Emit, when set, receives the continuation's text as it is generated,
	// as it reads after the prompt (a SentencePiece word's leading space
	// included). Text that could be the start of a stop sequence is held
	// back until it is known not to be one, so the pieces never hold a stop
	// sequence or what follows it.
	Emit func(text string)
	// Decoder, when set, makes the decoder for at most maxSeq positions
	// instead of llama.NewDecoder: a routed model's compute-skipping
	// decoder (kernels/dynamic), say.
	Decoder func(maxSeq int) Stepper
}

// Stepper feeds one token at one position and returns the logits of the
// next (llama.Decoder, dynamic.Decoder).
type Stepper interface {
	Step(token int32, pos int) []float32
}

// Result is a finished generation.
type Result struct {
	// IDs are the generated tokens, a terminating EOS id excluded; a stop
	// sequence's tokens are included.
	IDs []int32
	// Text is Decode(IDs) cut before the earliest stop sequence, as
	// lm-evaluation-harness cuts each "until" string from a generation.
	Text string
	// Reason is why generation ended; StopString the stop sequence that
	// ended it (for StopSequence).
	Reason     StopReason
	StopString string
}

// Generate continues prompt (token ids, BOS included where the model wants
// one) with model m. The prompt is fed position by position and then each
// chosen token is fed in turn, as run.c does; ctx is checked between
// positions.
func Generate(ctx context.Context, m *llama.Model, tok Detokenizer, prompt []int32, opt Options) (Result, error) {
	if len(prompt) == 0 {
		return Result{}, errors.New("generate: empty prompt")
	}
	for i, id := range prompt {
		if id < 0 || int(id) >= m.Config.Vocab {
			return Result{}, fmt.Errorf("generate: prompt token %d (at %d) outside the model's vocabulary [0, %d)", id, i, m.Config.Vocab)
		}
	}
	if opt.MaxNew < 0 {
		return Result{}, fmt.Errorf("generate: max new tokens is %d, must not be negative", opt.MaxNew)
	}
	if len(prompt) > m.Config.SeqLen {
		return Result{}, fmt.Errorf("generate: the prompt's %d tokens exceed the model's context of %d positions", len(prompt), m.Config.SeqLen)
	}
	// The last token chosen is never fed, so a context of SeqLen positions
	// leaves room for SeqLen-len(prompt)+1 new tokens.
	room := m.Config.SeqLen - len(prompt) + 1
	maxNew := opt.MaxNew
	if maxNew == 0 || maxNew > room {
		maxNew = room
	}
	for _, s := range opt.Stop {
		if s == "" {
			return Result{}, errors.New("generate: empty stop sequence")
		}
	}
	var dec Stepper
	if opt.Decoder != nil {
		dec = opt.Decoder(len(prompt) + maxNew - 1)
	} else {
		dec = llama.NewDecoder(m, len(prompt)+maxNew-1)
	}
	smp := sample.New(opt.Temperature, opt.TopP, opt.Seed)
	var logits []float32
	for pos, id := range prompt {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		logits = dec.Step(id, pos)
	}
	var st *streamer
	if opt.Emit != nil || len(opt.Stop) > 0 {
		st = newStreamer(tok, prompt, opt.Stop, opt.Emit)
	}
	res := Result{Reason: StopMaxTokens}
	// maxNew can be a header's whole context (millions); ids grow as they come.
	ids := make([]int32, 0, min(maxNew, 4096))
	for len(ids) < maxNew {
		next := smp.Sample(logits)
		if isEOS(next, opt.EOS) {
			res.Reason = StopEOS
			break
		}
		ids = append(ids, next)
		if st != nil {
			if s, ok := st.push(next); ok {
				res.Reason, res.StopString = StopSequence, s
				break
			}
		}
		if len(ids) == maxNew {
			break
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		logits = dec.Step(next, len(prompt)+len(ids)-1)
	}
	if st != nil && res.Reason != StopSequence {
		if s, ok := st.flush(); ok {
			res.Reason, res.StopString = StopSequence, s
		}
	}
	res.IDs = ids
	res.Text, _ = CutStop(tok.Decode(ids), opt.Stop)
	return res, nil
}

func isEOS(id int32, eos []int32) bool {
	for _, e := range eos {
		if id == e {
			return true
		}
	}
	return false
}

// CutStop cuts text before the earliest occurrence of any stop sequence,
// which is what lm-evaluation-harness's `for term in until: s =
// s.split(term)[0]` leaves, and returns the sequence it cut at ("" when
// none occurs).
func CutStop(text string, stop []string) (string, string) {
	at, which := -1, ""
	for _, s := range stop {
		if s == "" {
			continue
		}
		if i := strings.Index(text, s); i >= 0 && (at < 0 || i < at) {
			at, which = i, s
		}
	}
	if at < 0 {
		return text, ""
	}
	return text[:at], which
}

// RunCSteps converts run.c's step count (-n: positions run, prompt
// included; 0 or more than seqLen means seqLen) into the prompt tokens run.c
// feeds and prints (keep, BOS included) and the tokens it then generates
// (maxNew, 0 when the steps end inside the prompt).
func RunCSteps(promptLen, steps, seqLen int) (keep, maxNew int) {
	if steps <= 0 || steps > seqLen {
		steps = seqLen
	}
	// Positions 0…steps-1 each choose the token after them: the next
	// prompt token while there is one, a generated token afterwards.
	if promptLen > steps {
		return steps + 1, 0
	}
	return promptLen, steps + 1 - promptLen
}
