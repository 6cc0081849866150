package answer

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"lrmc/internal/shareddata"
)

// extractCase is one extraction: what comes out, or ok=false.
type extractCase struct {
	name, in, want string
	ok             bool
}

func runExtract(t *testing.T, f func(string) (string, bool), cases []extractCase) {
	t.Helper()
	for _, c := range cases {
		got, ok := f(c.in)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %q -> (%q, %v), want (%q, %v)", c.name, c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestGSM8KStrict(t *testing.T) {
	runExtract(t, GSM8KStrict.Apply, []extractCase{
		{"plain", "She makes $18.\n#### 18", "18", true},
		{"commas and period kept", "so #### 1,000.\n", "1,000.", true},
		{"negative", "#### -5", "-5", true},
		{"first of two", "#### 1 then #### 2", "1", true},
		{"no space", "####18", "", false},
		{"dollar not in class", "#### $18", "", false},
		{"no marker", "The answer is 18", "", false},
	})
}

func TestGSM8KFlexible(t *testing.T) {
	runExtract(t, GSM8KFlexible.Apply, []extractCase{
		{"trailing period kept", "The answer is 18.", "18.", true},
		{"money", "She has $1,234.56 left", "$1,234.56", true},
		{"single digits take group 2", "3 apples and 5 pears", "5", true},
		{"negative single digit", "It fell to -7", "-7", true},
		{"list: last element", "Answer: 1, 2, 3", "3", true},
		{"year then answer", "In 2023, he was 45.", "45.", true},
		{"decimal", "x = 10.5 km", "10.5", true},
		// lm-eval's pattern takes an ellipsis as a number: faithfully so.
		{"ellipsis wins", "so the answer is 7. Done...", "...", true},
		{"stop text", "Total: 42\n\nQuestion:", "42", true},
		{"no digits", "no digits here", "", false},
	})
}

func TestNormalizeNumber(t *testing.T) {
	runExtract(t, NormalizeNumber, []extractCase{
		{"money", "$1,000.50", "1000.5", true},
		{"dot zero", "18.0", "18", true},
		{"trailing dot", "18.", "18", true},
		{"leading dot negative", "-.5", "-0.5", true},
		{"negative zero", "-0.00", "0", true},
		{"leading zeros", "007", "7", true},
		{"spaces", "  42 ", "42", true},
		{"exponent refused", "1e3", "", false},
		{"fraction refused", "1/2", "", false},
		{"dot only", ".", "", false},
		{"two dots", "1.2.3", "", false},
		{"word", "eighteen", "", false},
	})
}

func TestGSM8KMatch(t *testing.T) {
	gold := "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 1,018"
	cases := []struct {
		pred, gold      string
		lmEval, numeric bool
	}{
		{"1,018.", gold, true, true},
		{"$1018", gold, true, true},
		{"1018.0", gold, false, true}, // lm-eval keeps ".0"
		{"1019", gold, false, false},
		{"18", "18", true, true},
		{"-5", "#### -5", true, true},
		{"[invalid]", gold, false, false},
	}
	for _, c := range cases {
		if got := GSM8KMatch(c.pred, c.gold); got != c.lmEval {
			t.Errorf("GSM8KMatch(%q, %q) = %v, want %v", c.pred, c.gold, got, c.lmEval)
		}
		if got := GSM8KNumberMatch(c.pred, c.gold); got != c.numeric {
			t.Errorf("GSM8KNumberMatch(%q, %q) = %v, want %v", c.pred, c.gold, got, c.numeric)
		}
	}
}

func TestGSM8KGoldErrors(t *testing.T) {
	for in, want := range map[string]string{
		"no marker at all":  `no "####" marker`,
		"#### eighteen":     `"eighteen" after "####" is not a number`,
		"a\n#### 1/2 apple": `is not a number`,
	} {
		_, err := GSM8KGold(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("GSM8KGold(%q) error %v, want it to contain %q", in, err, want)
		}
	}
}

// TestGSM8KTestSetGold parses every gold answer of the GSM8K test split:
// each is an integer, and lm-eval's metric and both filters, applied to the
// reference solution itself, agree with it.
func TestGSM8KTestSetGold(t *testing.T) {
	f, err := os.Open(shareddata.Path(t, "text", "gsm8k", "test.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n, negative, commas := 0, 0, 0
	for sc.Scan() {
		var item struct{ Question, Answer string }
		if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		n++
		gold, err := GSM8KGold(item.Answer)
		if err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		v, err := strconv.ParseInt(gold, 10, 64)
		if err != nil {
			t.Fatalf("line %d: gold %q is not an integer: %v", n, gold, err)
		}
		if v < 0 {
			negative++
		}
		if strings.Contains(item.Answer[strings.LastIndex(item.Answer, "####"):], ",") {
			commas++
		}
		if !GSM8KMatch(gold, item.Answer) {
			t.Errorf("line %d: lm-eval's metric does not match gold %q with its own answer field", n, gold)
		}
		for name, filter := range map[string]RegexFilter{"strict": GSM8KStrict, "flexible": GSM8KFlexible} {
			got, ok := filter.Apply(item.Answer)
			if !ok || !GSM8KMatch(got, item.Answer) || !GSM8KNumberMatch(got, gold) {
				t.Errorf("line %d: %s filter on the reference solution gives (%q, %v), gold %q", n, name, got, ok, gold)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1319 || negative != 2 || commas != 14 {
		t.Errorf("read %d items (%d negative, %d with commas), want 1319 (2, 14)", n, negative, commas)
	}
}

func TestBoxed(t *testing.T) {
	runExtract(t, ExtractBoxed, []extractCase{
		{"fraction", `So the answer is $\boxed{\frac{1}{2}}$.`, `\frac{1}{2}`, true},
		{"escaped braces balance too", `\boxed{\{1,2\}}`, `\{1,2\}`, true},
		{"last of two", `first \boxed{3}, then \boxed{4}`, "4", true},
		{"nested", `\boxed{x^{2}+\sqrt{y}}`, `x^{2}+\sqrt{y}`, true},
		{"fbox", `The answer is \fbox{3}.`, "3", true},
		{"boxed wins over a later fbox", `\boxed{3} and \fbox{4}`, "3", true},
		{"space form up to $", `$\boxed 5$ apples`, "5", true},
		{"space form not used for an earlier box", `\boxed 5 and \boxed{6}`, "6", true},
		{"empty", `\boxed{}`, "", true},
		{"two groups", `\boxed{a}{b}`, "a", true},
		{"unclosed", `\boxed{3`, "", false},
		{"bare", `\boxed`, "", false},
		{"no box", "The answer is 3", "", false},
		{"no brace after boxed", `\boxed3}`, "", false},
	})
}

// TestIsEquivHendrycks holds the MATH benchmark's own math_equivalence test
// suite (Hendrycks et al., test_math_equivalence.py) and more cases of
// strip_string's rules.
func TestIsEquivHendrycks(t *testing.T) {
	cases := []struct {
		a, b           string
		equiv, numeric bool // IsEquiv, Equivalent
	}{
		// The original suite.
		{`\tfrac{1}{2} + \frac1{72}`, `\\frac{1}{2} + 2/3`, false, false},
		{"10, 4, -2", "4, 10, -2", false, false},
		{"10, 4, 2", "4, 12, 2", false, false},
		{`\tfrac{1}{2} +\! \frac1{72}`, `\\dfrac{1}{2} +\frac{1}{72}`, true, true},
		{`10\text{ units}`, "10 ", true, true},
		{`10\text{ units}`, "100 ", false, false},
		{"10", `\$10`, true, true},
		{`\left(x-\frac{3}{2}\right)^2+(y+1)^2`, `(x-\frac{3}{2})^2+(y+1)^2`, true, true},
		{"0.1, 4, 2", "4, .1, 2", false, false},
		{"0.1", ".1", true, true},
		{`10\%`, "10", true, true},
		{`10\sqrt{3} + \sqrt4`, `10\sqrt3 + \sqrt{4}`, true, true},
		{`\frac34i`, `\frac{3}{4}i`, true, true},
		{`\tfrac83`, `\frac{8}{3}`, true, true},
		{"5x - 7y + 11z + 4 = 0", "x + y - z + 2 = 0", false, false},
		{"1/2", `\frac{1}{2}`, true, true},
		// More of strip_string's rules.
		{"x=5", "5", true, true},
		{"k = 7", "7", true, true},
		{"x = 2", "y=2", true, true}, // any short prefix goes
		{"a=b=c", "c", false, false},
		{`45^\circ`, "45", true, true},
		{`45^{\circ}`, "45", true, true},
		{"0.5", `\frac12`, true, true},
		{"0.50", `\frac{1}{2}`, false, true},
		{"0.25", `\frac{1}{4}`, false, true},
		{`\frac{2}{4}`, `\frac{1}{2}`, false, true},
		{"3.0", "3", false, true},
		{"-3/4", `-\dfrac{3}{4}`, false, true},
		{"03/4", `\frac{3}{4}`, false, false},
		{"3/4", `\dfrac{3}{4}`, true, true},
		{`\sqrt2`, `\sqrt{2}`, true, true},
		{`\frac{\sqrt{3}}{2}`, `\dfrac{\sqrt3}{2}`, true, true},
		{`5\text{ cm}`, "5", true, true},
		{`\text{(A)}`, "(A)", false, false}, // \text{ without a space stays
		{"1,000", "1000", false, false},
		{`2\sqrt{2}`, `\sqrt{8}`, false, false},
		{`\frac{1}{0}`, `\frac{2}{0}`, false, false},
		{"1e3", "1000", false, false},
		{`\frac½3`, `\frac{½}{3}`, true, true}, // code points, as Python
		{"\n7\n", "7", true, true},
		// Where the original raises, the raw strings are compared.
		{`10\text{ cm}\text{ m}`, "10", false, false},
		{`10\text{ cm}\text{ m}`, `10\text{ cm}\text{ m}`, true, true},
		{`\frac`, `\frac`, true, true},
		{`\frac`, `\frac `, false, false},
		{`\sqrt`, `\sqrt`, true, true},
		{`2\sqrt`, "2", false, false},
		{`\frac1`, `\frac1`, true, true}, // one character: left as it was
	}
	for _, c := range cases {
		if got := IsEquiv(c.a, c.b); got != c.equiv {
			sa, ea := StripString(c.a)
			sb, eb := StripString(c.b)
			t.Errorf("IsEquiv(%q, %q) = %v, want %v (stripped %q %v, %q %v)", c.a, c.b, got, c.equiv, sa, ea, sb, eb)
		}
		if got := IsEquiv(c.b, c.a); got != c.equiv {
			t.Errorf("IsEquiv(%q, %q) not symmetric", c.b, c.a)
		}
		if got := Equivalent(c.a, c.b); got != c.numeric {
			t.Errorf("Equivalent(%q, %q) = %v, want %v", c.a, c.b, got, c.numeric)
		}
	}
}

func TestStripString(t *testing.T) {
	for in, want := range map[string]string{
		`\frac12`:             `\frac{1}{2}`,
		`\frac1{72}`:          `\frac{1}{72}`,
		`\dfrac{a}{b}`:        `\frac{a}{b}`,
		`\left( 1, 2 \right)`: `(1,2)`,
		"-3/4":                `\frac{-3}{4}`,
		`\$5.50`:              "5.50",
		`{.5}`:                "{0.5}",
		".25":                 "0.25",
		".5":                  `\frac{1}{2}`, // 0.5 is then made a fraction
		`12\text{ inches}^2`:  "12",
		`x^{\circ}`:           "x",
		"":                    "",
	} {
		got, err := StripString(in)
		if err != nil || got != want {
			t.Errorf("StripString(%q) = (%q, %v), want %q", in, got, err, want)
		}
	}
}

func TestExactMatch(t *testing.T) {
	ign := []*regexp.Regexp{regexp.MustCompile(`^the `)}
	cases := []struct {
		pred, ref string
		opt       MatchOptions
		want      bool
	}{
		{"Paris", "paris", MatchOptions{}, false},
		{"Paris", "paris", MatchOptions{IgnoreCase: true}, true},
		{"paris!", "paris", MatchOptions{IgnorePunctuation: true}, true},
		{"paris…", "paris", MatchOptions{IgnorePunctuation: true}, false}, // ASCII only, as string.punctuation
		{"room 101", "room", MatchOptions{IgnoreNumbers: true}, false},    // the space stays
		{"room101", "room", MatchOptions{IgnoreNumbers: true}, true},
		{"the answer", "answer", MatchOptions{Ignore: ign}, true},
		// Case is folded after the regexes: "The " is not removed.
		{"The answer", "answer", MatchOptions{Ignore: ign, IgnoreCase: true}, false},
	}
	for _, c := range cases {
		if got := ExactMatch(c.pred, c.ref, c.opt); got != c.want {
			t.Errorf("ExactMatch(%q, %q, %+v) = %v, want %v", c.pred, c.ref, c.opt, got, c.want)
		}
	}
}

func TestRegexFilterAndFullMatch(t *testing.T) {
	noGroup := RegexFilter{Pattern: regexp.MustCompile(`[A-D]\)`), GroupSelect: -2}
	runExtract(t, noGroup.Apply, []extractCase{
		{"whole match, second last", "A) no B) maybe C) yes", "B)", true},
		{"out of range", "A) only", "", false},
	})
	oneGroup := RegexFilter{Pattern: regexp.MustCompile(`answer is (\w*)`)}
	runExtract(t, oneGroup.Apply, []extractCase{
		{"one group", "the answer is  B, surely", "", true}, // the group is empty, as findall gives it
		{"one group filled", "the answer is B", "B", true},
	})
	re, err := CompileFullMatch(`(?i)a|ab`)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"ab": true, "A": true, "abc": false, "xab": false} {
		if got := re.MatchString(s); got != want {
			t.Errorf("full match of %q on %q = %v, want %v", re, s, got, want)
		}
	}
	if _, err := CompileFullMatch(`a)|(b`); err == nil || !strings.Contains(err.Error(), "answer pattern \"a)|(b\"") {
		t.Errorf("a pattern that only compiles once wrapped: error %v", err)
	}
}

// TestAdversarialLinear runs the extractors on inputs built to make a
// naive implementation quadratic; each must finish at once.
func TestAdversarialLinear(t *testing.T) {
	inputs := []string{
		strings.Repeat(`\boxed{`, 100_000),
		strings.Repeat("{", 500_000) + `\boxed{` + strings.Repeat("{", 500_000),
		strings.Repeat(`\frac`, 100_000) + "12",
		strings.Repeat(`\sqrt`, 100_000) + "2",
		strings.Repeat("1,", 200_000),
		strings.Repeat("9", 1_000_000),
	}
	for i, s := range inputs {
		start := time.Now()
		ExtractBoxed(s)
		Equivalent(s, s+"0")
		GSM8KFlexible.Apply(s)
		GSM8KStrict.Apply(s)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("input %d (%d bytes) took %v", i, len(s), d)
		}
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		`\boxed{\frac{1}{2}}`, `\boxed{{{{}`, `}}}\boxed{`, `\fbox{\boxed{`, `\boxed 5$`,
		`\frac`, `\frac1`, `\sqrt`, `\text{ a}\text{ b}`, "x=1/2", "0.5", "#### 1,000.", "$1,234.56",
		"-.", `\dfrac{\sqrt3}{-2}`, "\xff\\frac\xfe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, ok := LastBoxed(s); ok && !strings.Contains(s, b) {
			t.Fatalf("LastBoxed(%q) = %q, not a substring", s, b)
		}
		ExtractBoxed(s)
		if !IsEquiv(s, s) || !Equivalent(s, s) {
			t.Fatalf("%q is not equivalent to itself", s)
		}
		if n, ok := NormalizeNumber(s); ok {
			if m, ok2 := NormalizeNumber(n); !ok2 || m != n {
				t.Fatalf("NormalizeNumber(%q) = %q, not idempotent (%q, %v)", s, n, m, ok2)
			}
		}
		for _, f := range []RegexFilter{GSM8KStrict, GSM8KFlexible} {
			if got, ok := f.Apply(s); ok && !strings.Contains(s, got) {
				t.Fatalf("filter %v on %q gave %q, not in the text", f.Pattern, s, got)
			}
		}
	})
}
