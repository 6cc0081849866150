package pretok

import (
	"math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func split(t *testing.T, expr, s string) []string {
	t.Helper()
	p, err := Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	return Split(nil, s, p, Isolated)
}

// The expected splits below are derived by hand from the regexes, following
// Oniguruma's leftmost-first alternation with backtracking. They were also
// checked against Python's `regex` module (which supports the lookahead).
func TestLlama3AndQwen(t *testing.T) {
	cases := []struct {
		name, in     string
		llama3, qwen []string
	}{
		{"empty", "", nil, nil},
		{"words", "Hello, world!", []string{"Hello", ",", " world", "!"}, nil},
		// \s+(?!\S) leaves the last space of a run to prefix the next word.
		{"space run", "a    b", []string{"a", "   ", " b"}, nil},
		// At the end of the text the whole run matches.
		{"trailing spaces", "a  ", []string{"a", "  "}, nil},
		{"leading space", " a", []string{" a"}, nil},
		// \s*[\r\n]+ ends at the last line break of a white-space run.
		{"newlines", "a\n\n  b", []string{"a", "\n\n", " ", " b"}, nil},
		{"crlf", "x\r\n\ty", []string{"x", "\r\n", "\ty"}, nil},
		{"spaces then newline", "a  \n b", []string{"a", "  \n", " b"}, nil},
		// A lone space before a digit is its own piece (\s+).
		{"space digit", "a 1", []string{"a", " ", "1"}, nil},
		{"digits", "1234567", []string{"123", "456", "7"}, []string{"1", "2", "3", "4", "5", "6", "7"}},
		// Contractions are case-insensitive; "'sup" gives "'s" first.
		{"contractions", "I'M they'll 'sup", []string{"I", "'M", " they", "'ll", " '", "sup"}, nil},
		{"contraction fold", "it'S x'Re", []string{"it", "'S", " x", "'Re"}, nil},
		// A punctuation rune may prefix letters: [^\r\n\p{L}\p{N}]?\p{L}+.
		{"punct prefix", "(int)", []string{"(int", ")"}, nil},
		{"punct newline", "end.\n\nNext", []string{"end", ".\n\n", "Next"}, nil},
		{"space punct", "a +=b", []string{"a", " +=", "b"}, nil},
		{"tab word", "\tindented", []string{"\tindented"}, nil},
		{"cjk", "你好，世界", []string{"你好", "，世界"}, nil},
		{"emoji", "hi 👋🏽!", []string{"hi", " 👋🏽!"}, nil},
		{"digits in word", "abc123def", []string{"abc", "123", "def"}, []string{"abc", "1", "2", "3", "def"}},
		{"unicode digits", "٣٤٥٦", []string{"٣٤٥", "٦"}, []string{"٣", "٤", "٥", "٦"}},
		{"nbsp", "a\u00a0\u00a0b", []string{"a", "\u00a0", "\u00a0b"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.qwen == nil {
				c.qwen = c.llama3
			}
			if got := split(t, Llama3Regex, c.in); !cmp.Equal(got, c.llama3) {
				t.Errorf("llama3 %q: got %q, want %q", c.in, got, c.llama3)
			}
			if got := split(t, Qwen2Regex, c.in); !cmp.Equal(got, c.qwen) {
				t.Errorf("qwen %q: got %q, want %q", c.in, got, c.qwen)
			}
		})
	}
}

func TestDeepSeekV3(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"Hello, world!", []string{"Hello", ",", " world", "!"}},
		// An ASCII punctuation rune takes the ASCII letters after it.
		{"O'Brien's", []string{"O", "'Brien", "'s"}},
		{"a.b", []string{"a", ".b"}},
		// A digit followed by a letter starts no alternative ("1"), but one
		// followed by a letter prefixes it ("2ab"). In the real pipeline digits
		// were split out by an earlier step.
		{"x 12ab", []string{"x", " ", "1", "2ab"}},
		{"a    b", []string{"a", "   ", " b"}},
		{"line1\n\nline2", []string{"line", "1", "\n\n", "line", "2"}},
		// Combining marks join letters: [\p{L}\p{M}]+.
		{"cafe\u0301 ok", []string{"cafe\u0301", " ok"}},
		{" ++i", []string{" ++", "i"}},
	}
	for _, c := range cases {
		if got := split(t, DeepSeekV3Regex, c.in); !cmp.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
	}
}

func TestGPT2(t *testing.T) {
	got := split(t, GPT2Regex, "I'm  here 42x\n!?")
	want := []string{"I", "'m", " ", " here", " 42", "x", "\n", "!?"}
	if !cmp.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFallbackRegexp(t *testing.T) {
	if got, want := split(t, `\p{N}{1,2}`, "ab12345c"), []string{"ab", "12", "34", "5", "c"}; !cmp.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := split(t, `[一-龥぀-ゟ゠-ヿ]+`, "abc日本語のテキストdef"), []string{"abc", "日本語のテキスト", "def"}; !cmp.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err := Compile(`\s+(?!\S)|x`)
	if err == nil || !strings.Contains(err.Error(), `lookaround "(?!"`) {
		t.Errorf("lookaround: got error %v", err)
	}
}

func TestBehaviors(t *testing.T) {
	p, _ := Literal("-")
	for _, c := range []struct {
		b    Behavior
		want []string
	}{
		{Isolated, []string{"a", "-", "b", "-", "-", "c"}},
		{Removed, []string{"a", "b", "c"}},
		{MergedWithPrevious, []string{"a-", "b-", "-", "c"}},
		{MergedWithNext, []string{"a", "-b", "-", "-c"}},
	} {
		if got := Split(nil, "a-b--c", p, c.b); !cmp.Equal(got, c.want) {
			t.Errorf("behavior %d: got %q, want %q", c.b, got, c.want)
		}
	}
}

// TestAgainstOracle compares the scanners with splits computed by Python's
// regex module (testdata/oracle.py writes them) when PRETOK_ORACLE names
// that output. A development aid, skipped otherwise; 24,000 cases agreed.
func TestAgainstOracle(t *testing.T) {
	path := os.Getenv("PRETOK_ORACLE")
	if path == "" {
		t.Skip("PRETOK_ORACLE not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	exprs := map[string]string{"llama3": Llama3Regex, "qwen": Qwen2Regex, "deepseek": DeepSeekV3Regex, "gpt2": GPT2Regex}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "\t")
		in := unhex(t, f[1])
		var want []string
		for _, w := range strings.Split(f[2], ",") {
			if w != "" {
				want = append(want, unhex(t, w))
			}
		}
		if got := split(t, exprs[f[0]], in); !cmp.Equal(got, want) {
			t.Errorf("%s %q: got %q, want %q", f[0], in, got, want)
		}
	}
}

func unhex(t *testing.T, h string) string {
	b := make([]byte, len(h)/2)
	for i := range b {
		var v byte
		for _, c := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		b[i] = v
	}
	return string(b)
}

// The scanners for DeepSeek-V3's digit and CJK splits must find exactly what
// Go's regexp finds for the same patterns.
func TestRunScannersMatchRegexp(t *testing.T) {
	alphabet := []rune("a1٣²½Ⅻ 日本語のカ龥龦ー。\n")
	rng := rand.New(rand.NewPCG(3, 4))
	for _, expr := range []string{DeepSeekV3DigitsRegex, DeepSeekV3CJKRegex} {
		fast, err := Compile(expr)
		if err != nil {
			t.Fatal(err)
		}
		slow := goRegexp{regexp.MustCompile(expr)}
		for n := 0; n < 2000; n++ {
			rs := make([]rune, rng.IntN(12))
			for i := range rs {
				rs[i] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(rs)
			if got, want := Split(nil, s, fast, Isolated), Split(nil, s, slow, Isolated); !cmp.Equal(got, want) {
				t.Fatalf("%s on %q: scanner %q, regexp %q", expr, s, got, want)
			}
		}
	}
}
