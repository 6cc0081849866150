package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/calib"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/textdata"
	"lrmc/planner"
)

// dataTokens reads a dataset, keeps a split of its documents and tokenizes
// them into one BOS-separated stream. Inputs: data source, tokenizer source.
type dataTokens struct{ tokensCodec }

func (dataTokens) Version() int { return 1 }

func (dataTokens) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.TokensParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	dataPath, err := input[string](c, 0)
	if err != nil {
		return nil, err
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return nil, err
	}
	var enc textdata.Encoder
	switch p.TokenizerFormat {
	case "llama2c":
		tok, err := llama2c.LoadTokenizer(tokPath, p.Vocab)
		if err != nil {
			return nil, err
		}
		enc = tok
	default:
		return nil, fmt.Errorf("%s: tokenizer format %q is not supported", tokPath, p.TokenizerFormat)
	}
	docs, err := textdata.ReadDocuments(dataPath, p.Format, p.Field)
	if err != nil {
		return nil, err
	}
	docs = textdata.Split(docs, p.From, p.To)
	if len(docs) == 0 {
		return nil, fmt.Errorf("%s: split [%g, %g) holds no document", dataPath, p.From, p.To)
	}
	stream := textdata.Stream(docs, enc)
	c.Log.Debug("tokenized", "path", dataPath, "documents", len(docs), "tokens", len(stream))
	return Tokens{IDs: stream, Rows: 1, Cols: len(stream)}, nil
}

// calibWindows samples calibration windows. Input: a token stream.
type calibWindows struct{ tokensCodec }

func (calibWindows) Version() int { return 1 }

func (calibWindows) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.CalibWindowsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	s, err := input[Tokens](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := calib.Windows(s.IDs, p.Samples, p.SeqLen, p.Seed)
	if err != nil {
		return nil, err
	}
	return Tokens{IDs: w, Rows: p.Samples, Cols: p.SeqLen}, nil
}

// evalWindows cuts held-out evaluation windows. Input: a token stream.
type evalWindows struct{ tokensCodec }

func (evalWindows) Version() int { return 1 }

func (evalWindows) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.EvalWindowsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	s, err := input[Tokens](c, 0)
	if err != nil {
		return nil, err
	}
	ws, err := perplexity.Windows(s.IDs, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	out := Tokens{Rows: len(ws), Cols: p.SeqLen, IDs: make([]int32, 0, len(ws)*p.SeqLen)}
	for _, w := range ws {
		out.IDs = append(out.IDs, w...)
	}
	return out, nil
}
