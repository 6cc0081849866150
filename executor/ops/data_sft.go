package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/safetensors"
	"lrmc/kernels/sft"
	"lrmc/kernels/textdata"
	"lrmc/planner"
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
	if _, err := eachExample(dataPath, p, tf, func(_ int, ex sft.Example) error {
		examples = append(examples, ex)
		return nil
	}); err != nil {
		return nil, err
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

// eachExample calls fn with every training example of the split in order
// and the index in the file of the document or conversation it comes from:
// plain documents train on every token; chat and instruction data are
// rendered with the model's chat template and train on the assistant's
// tokens only. It returns the number of documents or conversations.
func eachExample(path string, p planner.TokensParams, tf *tokenizerFiles, fn func(i int, ex sft.Example) error) (int, error) {
	switch p.Format {
	case textdata.FormatChat, textdata.FormatInstruction:
		all, err := textdata.ReadConversations(path, p.Format)
		if err != nil {
			return 0, err
		}
		lo, hi := textdata.SplitRange(len(all), p.From, p.To)
		if tf.template == nil {
			return 0, fmt.Errorf("%s: the tokenizer has no chat_template to render %s data with", path, p.Format)
		}
		opts := templateOptions(p, tf)
		for i, conv := range all[lo:hi] {
			exs, err := sft.FromConversation(tf.template, tf.tok.EncodeRendered, conv, opts)
			if err != nil {
				return 0, fmt.Errorf("%s: conversation %d: %w", path, lo+i, err)
			}
			for _, ex := range exs {
				if err := fn(lo+i, ex); err != nil {
					return 0, err
				}
			}
		}
		return hi - lo, nil
	}
	docs, err := textdata.ReadDocuments(path, p.Format, p.Field)
	if err != nil {
		return 0, err
	}
	enc := func(s string) []int32 { return tf.tok.Encode(s, true, false) }
	lo, hi := textdata.SplitRange(len(docs), p.From, p.To)
	for i := lo; i < hi; i++ {
		if err := fn(i, sft.FromDocument(enc, docs[i])); err != nil {
			return 0, err
		}
	}
	return hi - lo, nil
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
