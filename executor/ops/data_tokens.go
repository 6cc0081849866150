package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/calib"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/textdata"
	"lrmc/planner"
)

// dataTokens reads a dataset, keeps a split of its documents and tokenizes
// them into one BOS-separated stream. Inputs: data source, tokenizer source.
type dataTokens struct{ tokensCodec }

func (dataTokens) Version() int { return 1 }

func (dataTokens) Run(ctx context.Context, c *executor.Call) (any, error) {
	p, dataPath, tf, err := dataCall(c)
	if err != nil {
		return nil, err
	}
	var stream []int32
	var docs int
	switch p.Format {
	case textdata.FormatChat, textdata.FormatInstruction:
		stream, docs, err = conversationTokens(dataPath, p, tf)
	default:
		stream, docs, err = documentTokens(dataPath, p, tf)
	}
	if err != nil {
		return nil, err
	}
	if err := checkVocab(dataPath, stream, p.Vocab); err != nil {
		return nil, err
	}
	c.Log.Debug("tokenized", "path", dataPath, "documents", docs, "tokens", len(stream))
	return Tokens{IDs: stream, Rows: 1, Cols: len(stream)}, nil
}

// dataCall decodes what both data ops take: their parameters, the data
// file (input 0) and the tokenizer (input 1).
func dataCall(c *executor.Call) (p planner.TokensParams, dataPath string, tf *tokenizerFiles, err error) {
	if err = c.Params(&p); err != nil {
		return
	}
	if dataPath, err = input[string](c, 0); err != nil {
		return
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return
	}
	tf, err = openTokenizer(p.TokenizerFormat, tokPath, p.Vocab)
	return
}

// checkVocab rejects token ids the model cannot embed.
func checkVocab(path string, ids []int32, vocab int) error {
	for i, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("%s: token %d (id %d) is outside the model's vocabulary of %d", path, i, id, vocab)
		}
	}
	return nil
}

// documentTokens encodes the split's plain documents, each with BOS.
func documentTokens(path string, p planner.TokensParams, tf *tokenizerFiles) ([]int32, int, error) {
	var stream []int32
	docs, err := eachDocument(path, p, tf, func(_ int, _ string, ids []int32) error {
		stream = append(stream, ids...)
		return nil
	})
	return stream, docs, err
}

// eachDocument calls fn with the index in the file, the text and the ids
// of every plain document of the split, in order: the ids are the
// document's part of the data.tokens stream (textdata.Stream), so the op
// and `lrmc data preview` show the same thing. It returns the count.
func eachDocument(path string, p planner.TokensParams, tf *tokenizerFiles, fn func(i int, text string, ids []int32) error) (int, error) {
	docs, err := textdata.ReadDocuments(path, p.Format, p.Field)
	if err != nil {
		return 0, err
	}
	lo, hi := textdata.SplitRange(len(docs), p.From, p.To)
	if lo == hi {
		return 0, fmt.Errorf("%s: split [%g, %g) holds no document", path, p.From, p.To)
	}
	for i := lo; i < hi; i++ {
		if err := fn(i, docs[i], textdata.Stream(docs[i:i+1], tf.tok)); err != nil {
			return 0, err
		}
	}
	return hi - lo, nil
}

// conversationTokens renders the split's conversations with the model's
// chat template (so the tokens are exactly those the model sees in
// training and serving) and encodes them one after another.
func conversationTokens(path string, p planner.TokensParams, tf *tokenizerFiles) ([]int32, int, error) {
	var stream []int32
	n, err := eachConversation(path, p, tf, func(_ int, _ textdata.Conversation, _ string, ids []int32) error {
		stream = append(stream, ids...)
		return nil
	})
	return stream, n, err
}

// splitConversations reads the split's conversations and checks that the
// tokenizer can render them; lo is the first one's index in the file.
func splitConversations(path string, p planner.TokensParams, tf *tokenizerFiles) (convs []textdata.Conversation, lo int, err error) {
	all, err := textdata.ReadConversations(path, p.Format)
	if err != nil {
		return nil, 0, err
	}
	lo, hi := textdata.SplitRange(len(all), p.From, p.To)
	if lo == hi {
		return nil, 0, fmt.Errorf("%s: split [%g, %g) holds no conversation", path, p.From, p.To)
	}
	if p.Template != "model" {
		return nil, 0, fmt.Errorf("%s: %s data needs template \"model\"", path, p.Format)
	}
	if tf.template == nil {
		return nil, 0, fmt.Errorf("%s: the tokenizer has no chat_template to render %s data with", path, p.Format)
	}
	return all[lo:hi], lo, nil
}

// templateOptions are the chat template's options for data with params p.
func templateOptions(p planner.TokensParams, tf *tokenizerFiles) chattemplate.Options {
	opts := chattemplate.Options{BOSToken: tf.specials.BOS, EOSToken: tf.specials.EOS}
	if p.Thinking != nil {
		opts.Vars = map[string]any{"enable_thinking": *p.Thinking}
	}
	return opts
}

// eachConversation calls fn with the index in the file, the conversation,
// its rendering by the chat template and that rendering's ids, for every
// conversation of the split in order; the ids are the conversation's part
// of the data.tokens stream. It returns the count.
func eachConversation(path string, p planner.TokensParams, tf *tokenizerFiles, fn func(i int, c textdata.Conversation, text string, ids []int32) error) (int, error) {
	convs, lo, err := splitConversations(path, p, tf)
	if err != nil {
		return 0, err
	}
	opts := templateOptions(p, tf)
	for i, c := range convs {
		o := opts
		if c.Tools != nil {
			tools, err := chattemplate.ParseJSON(c.Tools)
			if err != nil {
				return 0, fmt.Errorf("%s: conversation %d: tools: %w", path, lo+i, err)
			}
			list, ok := tools.([]any)
			if !ok {
				return 0, fmt.Errorf("%s: conversation %d: tools is not a list", path, lo+i)
			}
			o.Tools = list
		}
		text, err := tf.template.RenderJSON(c.Messages, o)
		if err != nil {
			return 0, fmt.Errorf("%s: conversation %d: %w", path, lo+i, err)
		}
		if err := fn(lo+i, c, text, tf.tok.EncodeRendered(text)); err != nil {
			return 0, err
		}
	}
	return len(convs), nil
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
