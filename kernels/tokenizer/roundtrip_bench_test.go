package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"lrmc/internal/cputime"
	"lrmc/internal/shareddata"
)

// FuzzEncodeDecode checks that byte-level tokenizers lose nothing:
// Decode(Encode(s)) == s for valid UTF-8. DeepSeek-V3 has no normalizer;
// Qwen3 applies NFC, so it is held to NFC-normal input only. (Llama 3 is left
// out: its config asks Decode for transformers' clean-up of " ." and the like.)
//
//	go test ./kernels/tokenizer -run '^$' -fuzz FuzzEncodeDecode -fuzztime 30s
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{
		"", " ", "Hello, world!", "a  b\n\n  c ", "I'm 12345 ok", "你好，世界", "👋🏽 \u00a0\u3000",
		"<|im_end|>x<｜User｜>", "e\u0301", "\r\n\t\x00\x7f", "ſ's",
	} {
		f.Add(s)
	}
	// Some real text lines too.
	if dir := shareddata.Find(); dir != "" {
		if data, err := os.ReadFile(dir + "/text/tinystories/tinystories_val.txt"); err == nil {
			for _, line := range strings.SplitN(string(data), "\n", 6)[:5] {
				f.Add(line)
			}
		}
	}
	qwen := load(f, "qwen3")
	deepseek := load(f, "deepseek_v3")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		if got := deepseek.Decode(deepseek.Encode(s, false), false); got != s {
			t.Errorf("deepseek_v3: Decode(Encode(%q)) = %q", s, got)
		}
		if norm.NFC.IsNormalString(s) {
			if got := qwen.Decode(qwen.Encode(s, false), false); got != s {
				t.Errorf("qwen3: Decode(Encode(%q)) = %q", s, got)
			}
		}
	})
}

// BenchmarkEncode measures encoding throughput on TinyStories text.
//
//	go test ./kernels/tokenizer -run '^$' -bench Encode -benchtime 3x
func BenchmarkEncode(b *testing.B) {
	data, err := os.ReadFile(shareddata.Path(b, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	for _, name := range []string{"qwen3", "llama3", "deepseek_v3", "mistral_v0.1"} {
		tk := load(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			var n, passes int
			cpu0 := cputime.Process()
			for b.Loop() {
				// A fresh cache per pass would measure cold starts; the
				// steady state of a long stream is the warm one.
				n = len(tk.Encode(text, false))
				passes++
			}
			if cpu := cputime.Process() - cpu0; cpu > 0 {
				b.ReportMetric(float64(passes*len(text))/1e6/cpu.Seconds(), "MB/cpu-s")
			}
			b.ReportMetric(float64(len(text))/float64(n), "bytes/token")
		})
	}
}

// BenchmarkLoad measures parsing tokenizer.json and tokenizer_config.json.
func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"qwen3", "llama3", "deepseek_v3", "mistral_v0.1"} {
		dir := filepath.Dir(shareddata.Path(b, "tokenizers", name, "tokenizer.json"))
		b.Run(name, func(b *testing.B) {
			var passes int
			cpu0 := cputime.Process()
			for b.Loop() {
				if _, err := Load(dir); err != nil {
					b.Fatal(err)
				}
				passes++
			}
			if cpu := cputime.Process() - cpu0; cpu > 0 {
				b.ReportMetric(cpu.Seconds()*1e3/float64(passes), "cpu-ms/op")
			}
		})
	}
}
