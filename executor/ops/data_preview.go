package ops

import (
	"encoding/json"
	"fmt"
	"strings"

	"lrmc/kernels/sft"
	"lrmc/kernels/textdata"
	"lrmc/planner"
)

// DataPreview is what a data op feeds the model from its split, computed
// by the op's own code (eachDocument, eachConversation, eachExample), for
// `lrmc data preview`.
type DataPreview struct {
	Op     string // planner.OpTokens or planner.OpSFT
	Params planner.TokensParams
	// Items is the number of documents or conversations in the split,
	// Examples the number of sequences they became (data.sft expands a
	// conversation whose template rewrites history into one per turn).
	Items, Examples int
	// Tokens is the length of the op's stream; Trained, for data.sft, how
	// many of them are trained on.
	Tokens, Trained int
	// Shown are the first n sequences.
	Shown []PreviewItem
	// Think counts the <think> blocks of the split's conversations and
	// how many of them the model sees; Messages the messages' text outside
	// them (zero for plain documents).
	Think, Messages Survival
}

// PreviewItem is one sequence as the op feeds it.
type PreviewItem struct {
	Index  int    // of its document or conversation in the file
	Text   string // the rendered text (data.sft: the example's decoded tokens)
	IDs    []int32
	Pieces []string // the vocabulary's text of each id
	Mask   []bool   // data.sft: trained on; nil otherwise
}

// Survival compares pieces of text in the data with what the model is fed.
type Survival struct {
	// Total is the number of pieces in the split's messages (non-empty
	// <think>…</think> blocks or reasoning_content fields; or message
	// contents outside them), white space trimmed; Seen how many of them
	// appear verbatim in what the model is fed.
	Total, Seen int
	// Conversations lists the indices (in the file) of the conversations
	// that lose some, in order.
	Conversations []int
}

// PreviewData runs the part of data op op (with its planner parameters)
// that turns the data file into tokens, keeping the first n sequences with
// their text and pieces.
func PreviewData(op string, params json.RawMessage, dataPath, tokPath string, n int) (*DataPreview, error) {
	var p planner.TokensParams
	if err := json.Unmarshal(params, &p); err != nil {
		return nil, fmt.Errorf("%s params: %w", op, err)
	}
	tf, err := openTokenizer(p.TokenizerFormat, tokPath, p.Vocab)
	if err != nil {
		return nil, err
	}
	pv := &DataPreview{Op: op, Params: p}
	show := func(i int, text string, ids []int32, mask []bool) {
		pv.Examples++
		pv.Tokens += len(ids)
		if len(pv.Shown) < n {
			pv.Shown = append(pv.Shown, PreviewItem{Index: i, Text: text, IDs: ids, Pieces: tf.tok.Pieces(ids), Mask: mask})
		}
	}
	conv := p.Format == textdata.FormatChat || p.Format == textdata.FormatInstruction
	switch {
	case op == planner.OpSFT:
		// The reasoning a conversation's examples see, all of them
		// together: per-turn expansion keeps what the whole rendering drops.
		var seen, blocks, texts []string
		last := -1
		flush := func() {
			if last >= 0 {
				all := strings.Join(seen, "\n")
				pv.Think.add(last, blocks, all)
				pv.Messages.add(last, texts, all)
			}
			seen = seen[:0]
		}
		var convs []textdata.Conversation
		if conv {
			if convs, err = textdata.ReadConversations(dataPath, p.Format); err != nil {
				return nil, err
			}
		}
		pv.Items, err = eachExample(dataPath, p, tf, func(i int, ex sft.Example) error {
			text := tf.tok.Text(ex.Tokens)
			if conv && i != last {
				flush()
				last = i
				blocks, texts = splitMessages(convs[i].Messages)
			}
			seen = append(seen, text)
			for _, m := range ex.Mask {
				if m {
					pv.Trained++
				}
			}
			show(i, text, ex.Tokens, ex.Mask)
			return nil
		})
		flush()
	case conv:
		pv.Items, err = eachConversation(dataPath, p, tf, func(i int, c textdata.Conversation, text string, ids []int32) error {
			blocks, texts := splitMessages(c.Messages)
			pv.Think.add(i, blocks, text)
			pv.Messages.add(i, texts, text)
			show(i, text, ids, nil)
			return nil
		})
	default:
		pv.Items, err = eachDocument(dataPath, p, tf, func(i int, text string, ids []int32) error {
			show(i, text, ids, nil)
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	return pv, nil
}

// add counts the pieces of conversation i that text holds.
func (t *Survival) add(i int, pieces []string, text string) {
	lost := false
	for _, b := range pieces {
		t.Total++
		if strings.Contains(text, b) {
			t.Seen++
		} else {
			lost = true
		}
	}
	if lost {
		t.Conversations = append(t.Conversations, i)
	}
}

// splitMessages returns the reasoning of a conversation's messages (the
// inner text of each non-empty <think>…</think> block of a string content,
// and each reasoning_content field) and their text outside it, each
// trimmed of the white space templates re-flow around it.
func splitMessages(messages json.RawMessage) (think, text []string) {
	var msgs []struct {
		Content   any    `json:"content"`
		Reasoning string `json:"reasoning_content"`
	}
	if json.Unmarshal(messages, &msgs) != nil {
		return nil, nil
	}
	keep := func(dst []string, s string) []string {
		if s = strings.TrimSpace(s); s != "" {
			dst = append(dst, s)
		}
		return dst
	}
	for _, m := range msgs {
		think = keep(think, m.Reasoning)
		s, _ := m.Content.(string)
		for {
			before, rest, ok := strings.Cut(s, "<think>")
			if !ok {
				break
			}
			inner, after, ok := strings.Cut(rest, "</think>")
			if !ok {
				break
			}
			text = keep(text, before)
			think = keep(think, inner)
			s = after
		}
		text = keep(text, s)
	}
	return think, text
}
