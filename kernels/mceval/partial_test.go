package mceval

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
)

// The definitions of schema #Tasks these tests use (the compiler's tests
// check that the schema's own give the same items).
var (
	arcSpec = Spec{Text: "Question: {{question}}\nAnswer:", ChoicesField: "choices.text", Gold: "answerKey", GoldLabelsField: "choices.label"}
	wgSpec  = Spec{
		Choices:    []string{"{{sentence.split('_', 1)[0]}}{{option1}}", "{{sentence.split('_', 1)[0]}}{{option2}}"},
		Target:     "{{sentence.split('_', 1)[1].strip()}}",
		Gold:       "answer",
		GoldLabels: []string{"1", "2"},
		Metrics:    []string{"acc"},
	}
)

func TestExpressions(t *testing.T) {
	d := Doc{"s": "  a_b_c  ", "n": map[string]any{"l": []any{"x", " y "}, "k": 2.0}}
	for src, want := range map[string]any{
		"s.split('_')":         []any{"  a", "b", "c  "},
		"s.split(\"_\", 1)[1]": "b_c  ",
		"s.split('_', 0)":      []any{"  a_b_c  "},
		"s.lstrip()":           "a_b_c  ",
		"s.rstrip()":           "  a_b_c",
		" s.strip( ) ":         "a_b_c",
		"n.l[1].strip()":       "y",
		"n.k":                  2.0,
	} {
		e, err := parseExpr(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got, err := e.eval(d); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q = %#v, %v; want %#v", src, got, err, want)
		}
	}
	for src, want := range map[string]string{
		"n.l[2]":       `field "n.l" has no item 2`,
		"n.m":          `field "n.m" is missing`,
		"s.x":          `field "s" is a string, so it has no field "x"`,
		"n.k.strip()":  `field "n.k" is a number; strip() needs a string`,
		"n.split('_')": `field "n" is an object; split() needs a string`,
	} {
		e, err := parseExpr(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if _, err := e.eval(d); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", src, err, want)
		}
	}
	for _, bad := range []string{"", "1x", "s.", "s.upper()", "s.split()", "s.split('')", "s.split('_', x)", "s[", "s[-1]", "s | upper", "s.split('_'"} {
		if _, err := parseExpr(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	fields, err := wgSpec.Fields()
	if err != nil || strings.Join(fields, ",") != "answer,option1,option2,sentence" {
		t.Errorf("Fields = %v, %v", fields, err)
	}
}

// answerKey is looked up among the choices' labels, letters or numbers,
// as lm-eval's choices.label.index(answerKey) does; a key that is no
// label is an error naming both.
func TestGoldLabels(t *testing.T) {
	arc := mustTask(t, "arc_easy", arcSpec)
	doc := func(key string, labels ...any) Doc {
		text := make([]any, len(labels))
		for i := range labels {
			text[i] = string(rune('p' + i))
		}
		return Doc{"question": "q", "choices": map[string]any{"text": text, "label": labels}, "answerKey": key}
	}
	for _, c := range []struct {
		doc  Doc
		gold int
	}{
		{doc("A", "A", "B", "C", "D"), 0},
		{doc("D", "A", "B", "C", "D"), 3},
		{doc("3", "1", "2", "3", "4"), 2},
		{doc("E", "A", "B", "C", "D", "E"), 4},
		{doc(" B", "A", "B", "C", "D"), 1}, // OpenBookQA's lstrip
	} {
		items, err := Items(arc, []Doc{c.doc}, 0, 0, 0)
		if err != nil || items[0].Gold != c.gold || items[0].Continuation(c.gold) != " "+string(rune('p'+c.gold)) {
			t.Errorf("answerKey %q: %+v, %v; want gold %d", c.doc["answerKey"], items, err, c.gold)
		}
	}
	_, err := Items(arc, []Doc{doc("5", "1", "2", "3", "4")}, 0, 0, 0)
	if want := `arc_easy: document 0: field "answerKey" is "5", which is not one of the labels ["1" "2" "3" "4"]`; err == nil || err.Error() != want {
		t.Errorf("unknown key: %v, want %s", err, want)
	}
	if _, err := FromSpec("x", Spec{Text: "t", Choices: []string{"a", "b"}, Gold: "g", GoldLabels: []string{"a", "b"}, GoldLabelsField: "l"}); err == nil {
		t.Error("goldLabels and goldLabelsField together accepted")
	}
	if _, err := FromSpec("x", Spec{Text: "t", Choices: []string{"a", "b"}, Gold: "g", Metrics: []string{"f1"}}); err == nil {
		t.Error("unknown metric accepted")
	}
}

// WinoGrande items: each option fills the blank and ends its context,
// the rest of the sentence is the one continuation; a few-shot example is
// its gold context, the delimiter and the continuation.
func TestPartialItems(t *testing.T) {
	wg := mustTask(t, "winogrande", wgSpec)
	docs := []Doc{
		{"sentence": "Sam lent Tom a pen because _ had two.", "option1": "Sam", "option2": "Tom", "answer": "1"},
		{"sentence": "The bag was too small for the ball so _ had to go.", "option1": "the bag", "option2": "the ball", "answer": "2"},
	}
	items, err := Items(wg, docs, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	it := items[1]
	if !it.Partial || it.Context != "" || it.Gold != 1 ||
		it.ContextOf(0) != "The bag was too small for the ball so the bag" || it.ContextOf(1) != "The bag was too small for the ball so the ball" ||
		it.Continuation(0) != " had to go." || it.Continuation(1) != " had to go." {
		t.Errorf("item %+v", it)
	}
	shots, err := Items(wg, docs, 0, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Sam lent Tom a pen because Sam had two.\n\n"; shots[1].Context != want || shots[1].ContextOf(0) != want+"The bag was too small for the ball so the bag" {
		t.Errorf("1-shot context %q", shots[1].Context)
	}
	if _, err := Items(wg, []Doc{{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}}, 0, 0, 0); err == nil ||
		!strings.Contains(err.Error(), `field "sentence.split()" has no item 1`) {
		t.Errorf("a sentence without a blank: %v", err)
	}
}

// fakeEncoder is a byte-level tokenizer with BOS 1: token = byte + 2.
type fakeEncoder struct{}

func (fakeEncoder) Encode(s string) []int32 {
	out := []int32{1}
	for _, b := range []byte(s) {
		out = append(out, int32(b)+2)
	}
	return out
}

// Partial tokenization splits each context+continuation pair on its own:
// the context's trailing space moves to the continuation, as lm-eval's
// _encode_pair moves it.
func TestTokenizePartial(t *testing.T) {
	it := Item{Partial: true, Context: "x ", Choices: []string{"a", "bc "}, Target: "z", Delimiter: " "}
	reqs, err := TokenizePartial(fakeEncoder{}, it)
	if err != nil {
		t.Fatal(err)
	}
	enc := fakeEncoder{}.Encode
	want := []Request{
		{Context: enc("x a"), Conts: [][]int32{enc(" z")[1:]}},
		{Context: enc("x bc"), Conts: [][]int32{enc("  z")[1:]}},
	}
	if !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests %v, want %v", reqs, want)
	}
	if _, err := TokenizePartial(fakeEncoder{}, Item{Choices: []string{"a"}}); err == nil {
		t.Error("a non-partial item tokenized as partial")
	}
}

// WinoGrande's partial scoring on stories260K: each choice's
// log-likelihood is log p(" " + rest of sentence | sentence up to the
// blank + option), checked against an independent float64 forward pass of
// each full string (context+continuation encoded whole, the continuation
// being the tokens past the context's own encoding).
func TestWinoGrandeStories260KAgainstFloat64Reference(t *testing.T) {
	bin := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	m, err := llama2c.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	wg := mustTask(t, "winogrande", wgSpec)
	items, err := Items(wg, []Doc{{"sentence": "Lily gave the ball to Tom because _ was sad.", "option1": "Lily", "option2": "Tom", "answer": "2"}}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := TokenizePartial(l2cEncoder{tok}, items[0])
	if err != nil {
		t.Fatal(err)
	}
	got := ScorePartial(llama.NewDecoder(m, m.Config.SeqLen), reqs)
	ref := loadRef(t, bin)
	for i, opt := range []string{"Lily", "Tom"} {
		ctx := "Lily gave the ball to Tom because " + opt
		full := tok.Encode(ctx+" was sad.", true, false)
		n := len(tok.Encode(ctx, true, false))
		want := ref.loglik(full[:n], full[n:])
		t.Logf("choice %d: %d continuation tokens, lrmc %.9f, float64 reference %.9f", i, len(full)-n, got[i], want)
		if math.Abs(got[i]-want) > 1e-4 {
			t.Errorf("choice %d: log-likelihood %.9f, float64 reference %.9f", i, got[i], want)
		}
	}
	if got[0] == got[1] {
		t.Error("both contexts give the same log-likelihood")
	}
}
