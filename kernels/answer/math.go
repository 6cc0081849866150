package answer

import (
	"errors"
	"math/big"
	"strings"
	"unicode/utf8"
)

// LastBoxed returns the last \boxed{...} of a solution with its braces
// balanced, as the MATH benchmark's last_boxed_only_string does: the last
// "\boxed" is taken when there is one, else the last "\fbox" (a \boxed
// always wins over a later \fbox, as there); the span runs from it to the
// brace that closes the first "{" after it. lm-eval's form "\boxed 42"
// (a space, no braces) is taken up to the next "$". It reports false when
// there is no box or its brace never closes.
func LastBoxed(s string) (string, bool) {
	idx := strings.LastIndex(s, `\boxed`)
	if idx >= 0 && strings.HasPrefix(s[idx:], `\boxed `) {
		// lm-eval's hendrycks_math form: the text after "\boxed " up to a
		// "$". (lm-eval takes it whenever a "\boxed " occurs anywhere;
		// here only when the last \boxed is of that form, so a later
		// \boxed{...} is not swallowed.)
		tail, _, _ := strings.Cut(s[idx+len(`\boxed `):], "$")
		return `\boxed ` + tail, true
	}
	if idx < 0 {
		idx = strings.LastIndex(s, `\fbox`)
		if idx < 0 {
			return "", false
		}
	}
	open := 0
	for i := idx; i < len(s); i++ {
		switch s[i] {
		case '{':
			open++
		case '}':
			open--
			if open == 0 {
				return s[idx : i+1], true
			}
		}
	}
	return "", false
}

// RemoveBoxed returns the content of a box LastBoxed returned:
// "\boxed{x}" -> "x", "\fbox{x}" -> "x", "\boxed x" -> "x". It reports
// false for anything else (a "\boxed" not followed by "{", for instance).
func RemoveBoxed(s string) (string, bool) {
	if rest, ok := strings.CutPrefix(s, `\boxed `); ok {
		return rest, true
	}
	for _, left := range []string{`\boxed{`, `\fbox{`} {
		if strings.HasPrefix(s, left) && strings.HasSuffix(s, "}") && len(s) > len(left) {
			return s[len(left) : len(s)-1], true
		}
	}
	return "", false
}

// ExtractBoxed is RemoveBoxed(LastBoxed(s)): the answer of a MATH-style
// solution.
func ExtractBoxed(s string) (string, bool) {
	b, ok := LastBoxed(s)
	if !ok {
		return "", false
	}
	return RemoveBoxed(b)
}

// errStrip stands for the Python exceptions strip_string can raise (an
// index past the end after "\frac" or "\sqrt", more than one "\text{ ");
// is_equiv catches them and compares the raw strings instead.
var errStrip = errors.New("strip_string raised")

// StripString is the MATH benchmark's _strip_string (Hendrycks et al.,
// math_equivalence.py), rule for rule and in its order: newlines, "\!" and
// doubled backslashes go; \tfrac and \dfrac become \frac; \left, \right,
// degrees (^{\circ}, ^\circ), "\$", units after "\text{ " and "\%" are
// removed; " ." and "{." get their 0; a leading "." becomes "0."; a short
// "x =" prefix (two characters at most before a single "=") is dropped;
// \sqrt3 -> \sqrt{3}; spaces go; \frac12 -> \frac{1}{2}, \frac1b ->
// \frac{1}{b}; exactly "0.5" becomes \frac{1}{2}; and "a/b" of two integers
// becomes \frac{a}{b}. The error is where the original raises.
func StripString(s string) (string, error) {
	s = strings.ReplaceAll(s, "\n", "")
	s = strings.ReplaceAll(s, `\!`, "")
	s = strings.ReplaceAll(s, `\\`, `\`)
	s = strings.ReplaceAll(s, "tfrac", "frac")
	s = strings.ReplaceAll(s, "dfrac", "frac")
	s = strings.ReplaceAll(s, `\left`, "")
	s = strings.ReplaceAll(s, `\right`, "")
	s = strings.ReplaceAll(s, `^{\circ}`, "")
	s = strings.ReplaceAll(s, `^\circ`, "")
	s = strings.ReplaceAll(s, `\$`, "")
	s, err := removeRightUnits(s)
	if err != nil {
		return "", err
	}
	s = strings.ReplaceAll(s, `\%`, "")
	s = strings.ReplaceAll(s, " .", " 0.")
	s = strings.ReplaceAll(s, "{.", "{0.")
	if s == "" {
		return s, nil
	}
	if s[0] == '.' {
		s = "0" + s
	}
	if parts := strings.Split(s, "="); len(parts) == 2 && utf8.RuneCountInString(parts[0]) <= 2 {
		s = parts[1]
	}
	s, err = fixSqrt(s)
	if err != nil {
		return "", err
	}
	s = strings.ReplaceAll(s, " ", "")
	s, err = fixFracs(s)
	if err != nil {
		return "", err
	}
	if s == "0.5" {
		s = `\frac{1}{2}`
	}
	return fixASlashB(s), nil
}

// removeRightUnits drops what follows "\text{ " (the MATH answers use that
// form only for units); the original asserts there is one at most.
func removeRightUnits(s string) (string, error) {
	if !strings.Contains(s, `\text{ `) {
		return s, nil
	}
	parts := strings.Split(s, `\text{ `)
	if len(parts) != 2 {
		return "", errStrip
	}
	return parts[0], nil
}

// fixSqrt braces the one character after a bare \sqrt: \sqrt3 -> \sqrt{3}.
// A \sqrt at the very end raises in the original.
func fixSqrt(s string) (string, error) {
	if !strings.Contains(s, `\sqrt`) {
		return s, nil
	}
	parts := strings.Split(s, `\sqrt`)
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		if p == "" {
			return "", errStrip
		}
		if p[0] != '{' {
			_, n := utf8.DecodeRuneInString(p)
			b.WriteString(`\sqrt{` + p[:n] + "}" + p[n:])
		} else {
			b.WriteString(`\sqrt` + p)
		}
	}
	return b.String(), nil
}

// fixFracs braces the arguments of \frac written without braces:
// \frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}. A \frac followed by a
// single character leaves the whole string as it was; one followed by
// nothing raises in the original.
func fixFracs(s string) (string, error) {
	parts := strings.Split(s, `\frac`)
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		b.WriteString(`\frac`)
		if p == "" {
			return "", errStrip
		}
		if p[0] == '{' {
			b.WriteString(p)
			continue
		}
		// Python indexes code points: a and b are characters, not bytes.
		_, na := utf8.DecodeRuneInString(p)
		if na == len(p) {
			return s, nil
		}
		a := p[:na]
		_, nb := utf8.DecodeRuneInString(p[na:])
		c, post := p[na:na+nb], p[na+nb:]
		if c != "{" {
			b.WriteString("{" + a + "}{" + c + "}" + post)
		} else {
			b.WriteString("{" + a + "}" + c + post)
		}
	}
	return b.String(), nil
}

// fixASlashB turns "a/b" of two integers, written as Python would print
// them (no sign but a leading "-", no leading zeros), into \frac{a}{b}.
func fixASlashB(s string) string {
	parts := strings.Split(s, "/")
	if len(parts) != 2 || !canonicalInt(parts[0]) || !canonicalInt(parts[1]) {
		return s
	}
	return `\frac{` + parts[0] + "}{" + parts[1] + "}"
}

// canonicalInt reports whether s is str(int(s)) in Python: the original
// converts with int() and asserts the text round-trips.
func canonicalInt(s string) bool {
	d := strings.TrimPrefix(s, "-")
	if d == "" || !allDigits(d) {
		return false
	}
	if d[0] == '0' {
		return d == "0" && s == "0"
	}
	return true
}

// IsEquiv is the MATH benchmark's is_equiv: the two answers are equal after
// StripString, or, when stripping either raises, equal as given. It is the
// comparison behind the published MATH accuracies; Equivalent is the more
// lenient one.
func IsEquiv(a, b string) bool {
	sa, errA := StripString(a)
	sb, errB := StripString(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return sa == sb
}

// Equivalent is IsEquiv extended by exact numeric equality: when both
// stripped answers are plain numbers (an integer or decimal, or \frac{p}{q}
// of two such, with an optional leading "-"), they are compared as exact
// rationals, so 0.25 = \frac{1}{4} = \frac{2}{8} and 3.0 = 3, which
// strip_string only does for 0.5. Nothing is rounded (math/big), nothing
// symbolic is attempted (\sqrt{8} and 2\sqrt{2} stay different), and a
// comma is never read as a thousands separator (in MATH answers it separates
// the parts of a tuple or interval).
func Equivalent(a, b string) bool {
	if IsEquiv(a, b) {
		return true
	}
	sa, errA := StripString(a)
	sb, errB := StripString(b)
	if errA != nil || errB != nil {
		return false
	}
	ra, okA := mathNumber(sa)
	rb, okB := mathNumber(sb)
	return okA && okB && ra.Cmp(rb) == 0
}

// mathNumber reads a stripped answer that is a plain number: a decimal,
// \frac{p}{q} of decimals (q not zero), either with a leading "-".
func mathNumber(s string) (*big.Rat, bool) {
	if r, ok := parseRat(s); ok {
		return r, true
	}
	neg := false
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		neg, s = true, rest
	}
	rest, ok := strings.CutPrefix(s, `\frac{`)
	if !ok {
		return nil, false
	}
	p, q, ok := strings.Cut(rest, "}{")
	if !ok || !strings.HasSuffix(q, "}") {
		return nil, false
	}
	q = q[:len(q)-1]
	rp, okP := parseRat(p)
	rq, okQ := parseRat(q)
	if !okP || !okQ || rq.Sign() == 0 {
		return nil, false
	}
	r := new(big.Rat).Quo(rp, rq)
	if neg {
		r.Neg(r)
	}
	return r, true
}
