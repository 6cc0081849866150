package mceval

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Item is one question: the context the model reads (few-shot examples
// included) and the choices, of which Gold is right.
type Item struct {
	// Doc is the document's index in the file.
	Doc     int
	Context string
	// Choices are the raw choices; each continuation is Delimiter+choice.
	Choices   []string
	Delimiter string
	Gold      int
	// Partial items (a task with a target) score one continuation,
	// Delimiter+Target, after each of the contexts Context+choice.
	Partial bool
	Target  string
}

// Continuation returns the text scored for choice i.
func (it Item) Continuation(i int) string {
	if it.Partial {
		return it.Delimiter + it.Target
	}
	return it.Delimiter + it.Choices[i]
}

// ContextOf returns the context choice i is scored after.
func (it Item) ContextOf(i int) string {
	if it.Partial {
		return it.Context + it.Choices[i]
	}
	return it.Context
}

// Items turns the first samples documents (all when samples is 0, as
// lm-eval's --limit does) into items with k few-shot examples each. The
// examples are drawn without replacement from the other documents of the
// same file by a PCG generator seeded with (seed, document index), so an
// item's examples do not depend on which other items are evaluated.
// Each example is written as lm-eval writes one: text, delimiter, gold
// choice; examples and the item are joined by the few-shot delimiter.
func Items(t Task, docs []Doc, samples, k int, seed uint64) ([]Item, error) {
	n := len(docs)
	if samples > 0 {
		if samples > n {
			return nil, fmt.Errorf("%s: %d samples asked for but the data has %d documents", t.Name, samples, n)
		}
		n = samples
	}
	if k > 0 && k >= len(docs) {
		return nil, fmt.Errorf("%s: %d few-shot examples need more than the %d documents of the data", t.Name, k, len(docs))
	}
	items := make([]Item, n)
	for i := range n {
		text, choices, gold, target, err := parts(t, docs[i])
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", t.Name, i, err)
		}
		var ctx strings.Builder
		if k > 0 {
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			for _, j := range pick(r, len(docs), k, i) {
				xt, xc, xg, xtarget, err := parts(t, docs[j])
				if err != nil {
					return nil, fmt.Errorf("%s: few-shot document %d: %w", t.Name, j, err)
				}
				// An example is its gold pair: a partial task's gold
				// context and the shared target, as lm-eval's sampler
				// writes choices[gold] + delimiter + target.
				if t.Target != nil {
					ctx.WriteString(xt + xc[xg] + t.Delimiter + xtarget + t.FewshotDelimiter)
				} else {
					ctx.WriteString(xt + t.Delimiter + xc[xg] + t.FewshotDelimiter)
				}
			}
		}
		ctx.WriteString(text)
		items[i] = Item{Doc: i, Context: ctx.String(), Choices: choices, Delimiter: t.Delimiter, Gold: gold,
			Partial: t.Target != nil, Target: target}
	}
	return items, nil
}

// pick draws k distinct indices of [0, n) other than skip, in draw order.
func pick(r *rand.Rand, n, k, skip int) []int {
	// A partial Fisher-Yates shuffle over the indices without skip.
	idx := make([]int, 0, n-1)
	for j := range n {
		if j != skip {
			idx = append(idx, j)
		}
	}
	for j := range k {
		s := j + r.IntN(len(idx)-j)
		idx[j], idx[s] = idx[s], idx[j]
	}
	return idx[:k]
}

// parts renders a document: its text, choices, gold index and, for a
// partial task, its target.
func parts(t Task, d Doc) (text string, choices []string, gold int, target string, err error) {
	if text, err = t.Text(d); err != nil {
		return
	}
	if choices, err = t.Choices(d); err != nil {
		return
	}
	if gold, err = t.Gold(d); err != nil {
		return
	}
	if gold < 0 || gold >= len(choices) {
		err = fmt.Errorf("gold %d is not one of the %d choices", gold, len(choices))
		return
	}
	if t.Target != nil {
		target, err = t.Target(d)
	}
	return
}
