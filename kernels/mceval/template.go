package mceval

import "math/rand/v2"

// Template is one doc_to_text-style template with {{ field }} holes (see
// Spec), exported for tasks other than multiple choice (generation tasks)
// that render documents the same way.
type Template struct{ t template }

// ParseTemplate checks and compiles a template.
func ParseTemplate(s string) (Template, error) {
	t, err := parseTemplate(s)
	return Template{t}, err
}

// Render fills the template's holes from a document.
func (t Template) Render(d Doc) (string, error) { return t.t.render(d) }

// FewshotIndices are the documents Items draws as the k few-shot examples
// of document i among n, with seed: the same draw for every task kind, so
// an item's examples depend only on (seed, i, n, k).
func FewshotIndices(seed uint64, n, k, i int) []int {
	return pick(rand.New(rand.NewPCG(seed, uint64(i))), n, k, i)
}
