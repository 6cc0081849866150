package bench

import (
	"context"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/generate"
	"lrmc/kernels/llama"
	"lrmc/kernels/mceval"
)

// The eval benchmarks on stories260K and the first 50 PIQA items, each
// against its plain baseline:
//
//	go test -run=NONE -bench='MC|Generate|PlainDecode' -count=5 ./kernels/bench
func loadStories(b *testing.B) (*generate.Model, []mceval.Request) {
	b.Helper()
	dir := shareddata.Dir(b)
	m, err := generate.Load(shareddata.Path(b, "models", "stories260K", "stories260K.bin"), "", "")
	if err != nil {
		b.Fatal(err)
	}
	t, err := EvalTaskNamed("piqa")
	if err != nil {
		b.Fatal(err)
	}
	rs, err := t.Requests(dir, 50, encoder{m.Tok})
	if err != nil {
		b.Fatal(err)
	}
	return m, rs
}

type encoder struct{ t generate.Tokenizer }

func (e encoder) Encode(s string) []int32 { return e.t.EncodePrompt(s) }

func BenchmarkMCHarness(b *testing.B) {
	m, rs := loadStories(b)
	maxLen := m.LM.Config.SeqLen
	batches, err := mceval.Batches(rs, maxLen, mceval.DefaultBudget)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		for _, r := range batches {
			if _, err := mceval.ScoreBatch(m.LM, maxLen, rs[r[0]:r[1]]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(rs)*b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkMCTokenByToken(b *testing.B) {
	m, rs := loadStories(b)
	d := llama.NewDecoder(m.LM, m.LM.Config.SeqLen)
	for b.Loop() {
		for _, r := range rs {
			mceval.Score(d, r)
		}
	}
	b.ReportMetric(float64(len(rs)*b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkMCPlainPrefill(b *testing.B) {
	m, rs := loadStories(b)
	var seqs [][]int32
	var rows []int
	for _, r := range rs {
		s := append([]int32{}, r.Context...)
		n := 1
		for _, c := range r.Conts {
			s = append(s, c[:len(c)-1]...)
			n += len(c) - 1
		}
		seqs, rows = append(seqs, s), append(rows, n)
	}
	for b.Loop() {
		for i, s := range seqs {
			plainPrefill(m.LM, s, rows[i])
		}
	}
	b.ReportMetric(float64(len(rs)*b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkGenerate(b *testing.B) {
	m, _ := loadStories(b)
	prompt := m.Tok.EncodePrompt("Once upon a time")
	for b.Loop() {
		if _, err := generate.Generate(context.Background(), m.LM, m.Tok, prompt, generate.Options{MaxNew: 64}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkPlainDecode(b *testing.B) {
	m, _ := loadStories(b)
	prompt := m.Tok.EncodePrompt("Once upon a time")
	for b.Loop() {
		plainDecode(m.LM, prompt, 64)
	}
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
