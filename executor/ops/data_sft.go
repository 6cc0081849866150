package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/safetensors"
	"lrmc/kernels/sft"
	"lrmc/kernels/textdata"
)

// SFTStream is training data: examples concatenated, with a loss mask
// (Mask[i]: token i is trained on).
type SFTStream struct {
	IDs  []int32
	Mask []bool
}

// dataSFT reads training data into an SFTStream: plain documents train on
// every token; chat and instruction data are rendered with the model's chat
// template and train on the assistant's tokens only (kernels/sft).
// Inputs: data source, tokenizer source.
type dataSFT struct{ sftCodec }

func (dataSFT) Version() int { return 1 }

func (dataSFT) Run(ctx context.Context, c *executor.Call) (any, error) {
	p, dataPath, tf, err := dataCall(c)
	if err != nil {
		return nil, err
	}
	var examples []sft.Example
	switch p.Format {
	case textdata.FormatChat, textdata.FormatInstruction:
		convs, err := textdata.ReadConversations(dataPath, p.Format)
		if err != nil {
			return nil, err
		}
		lo, hi := textdata.SplitRange(len(convs), p.From, p.To)
		if tf.template == nil {
			return nil, fmt.Errorf("%s: the tokenizer has no chat_template to render %s data with", dataPath, p.Format)
		}
		opts := chattemplate.Options{BOSToken: tf.specials.BOS, EOSToken: tf.specials.EOS}
		if p.Thinking != nil {
			opts.Vars = map[string]any{"enable_thinking": *p.Thinking}
		}
		for i, conv := range convs[lo:hi] {
			ex, err := sft.FromConversation(tf.template, tf.tok.EncodeRendered, conv, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: conversation %d: %w", dataPath, lo+i, err)
			}
			examples = append(examples, ex...)
		}
	default:
		docs, err := textdata.ReadDocuments(dataPath, p.Format, p.Field)
		if err != nil {
			return nil, err
		}
		enc := func(s string) []int32 { return tf.tok.Encode(s, true, false) }
		for _, d := range textdata.Split(docs, p.From, p.To) {
			examples = append(examples, sft.FromDocument(enc, d))
		}
	}
	var out SFTStream
	for _, ex := range examples {
		out.IDs = append(out.IDs, ex.Tokens...)
		out.Mask = append(out.Mask, ex.Mask...)
	}
	if len(out.IDs) == 0 {
		return nil, fmt.Errorf("%s: split [%g, %g) holds no training tokens", dataPath, p.From, p.To)
	}
	if err := checkVocab(dataPath, out.IDs, p.Vocab); err != nil {
		return nil, err
	}
	return out, nil
}

// sftCodec stores an SFTStream as I32 tokens and U8 mask tensors.
type sftCodec struct{}

func (sftCodec) Encode(v any) ([]byte, error) {
	s, ok := v.(SFTStream)
	if !ok {
		return nil, fmt.Errorf("result is %T, want SFTStream", v)
	}
	mask := make([]byte, len(s.Mask))
	for i, m := range s.Mask {
		if m {
			mask[i] = 1
		}
	}
	return safetensors.Encode([]safetensors.Tensor{
		safetensors.I32("tokens", []int{len(s.IDs)}, s.IDs),
		{Name: "mask", DType: safetensors.DTypeU8, Shape: []int{len(mask)}, Data: mask},
	}, nil)
}

func (sftCodec) Decode(b []byte) (any, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, err
	}
	tt, ok1 := f.Tensor("tokens")
	mt, ok2 := f.Tensor("mask")
	if !ok1 || !ok2 || mt.DType != safetensors.DTypeU8 {
		return nil, fmt.Errorf("no tokens and U8 mask tensors")
	}
	ids, err := tt.Int32()
	if err != nil {
		return nil, err
	}
	if len(mt.Data) != len(ids) {
		return nil, fmt.Errorf("%d mask entries for %d tokens", len(mt.Data), len(ids))
	}
	mask := make([]bool, len(mt.Data))
	for i, m := range mt.Data {
		mask[i] = m != 0
	}
	return SFTStream{IDs: ids, Mask: mask}, nil
}
