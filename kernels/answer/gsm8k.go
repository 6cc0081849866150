package answer

import (
	"fmt"
	"regexp"
	"strings"
)

// The patterns of lm-eval's gsm8k task (lm_eval/tasks/gsm8k/gsm8k.yaml,
// version 3), unchanged: Go's RE2 and Python's re agree on them
// (alternation is leftmost-first in both, and the classes are ASCII).
var (
	// GSM8KStrict is the "strict-match" filter: the first "#### N".
	GSM8KStrict = RegexFilter{Pattern: regexp.MustCompile(`#### (\-?[0-9\.\,]+)`), GroupSelect: 0}
	// GSM8KFlexible is the "flexible-extract" filter: the last number-like
	// span (a run of two or more of $ 0-9 . , with an optional sign, or a
	// single digit run).
	GSM8KFlexible = RegexFilter{Pattern: regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`), GroupSelect: -1}
	// GSM8KMetric is the task's exact_match: case folded, and commas,
	// dollar signs, everything up to the last "#### " and one final period
	// removed from prediction and gold alike.
	GSM8KMetric = MatchOptions{
		IgnoreCase: true,
		Ignore: []*regexp.Regexp{
			regexp.MustCompile(`,`),
			regexp.MustCompile(`\$`),
			regexp.MustCompile(`(?s).*#### `),
			regexp.MustCompile(`\.$`),
		},
	}
)

// GSM8KGold returns the gold answer of a GSM8K item from its "answer" field:
// the text after the last "####", trimmed, with thousands commas removed
// ("1,000" -> "1000"). It fails when the marker is absent or what follows
// is not a number.
func GSM8KGold(answerField string) (string, error) {
	i := strings.LastIndex(answerField, "####")
	if i < 0 {
		return "", fmt.Errorf("gsm8k answer: no \"####\" marker in %q", clip(answerField))
	}
	raw := strings.TrimSpace(answerField[i+len("####"):])
	n, ok := NormalizeNumber(raw)
	if !ok {
		return "", fmt.Errorf("gsm8k answer: %q after \"####\" is not a number", clip(raw))
	}
	return n, nil
}

// GSM8KMatch scores an extracted prediction against the answer field (or
// an extracted gold) exactly as lm-eval's exact_match does for gsm8k, so
// "18.0" does not match "18" (nor would it there).
func GSM8KMatch(pred, gold string) bool {
	return ExactMatch(pred, gold, GSM8KMetric)
}

// GSM8KNumberMatch is the numeric reading of GSM8KMatch: both sides are
// reduced to canonical decimals by NormalizeNumber, so "$1,000.00" matches
// "1000" and "18." matches "18.0". A side that is not a number falls back
// to GSM8KMatch.
func GSM8KNumberMatch(pred, gold string) bool {
	g := gold
	if i := strings.LastIndex(g, "####"); i >= 0 {
		g = g[i+len("####"):]
	}
	p, okp := NormalizeNumber(pred)
	q, okq := NormalizeNumber(g)
	if okp && okq {
		return p == q
	}
	return GSM8KMatch(pred, gold)
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
