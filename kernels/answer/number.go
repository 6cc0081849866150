package answer

import (
	"math/big"
	"strings"
)

// NormalizeNumber reduces a numeric answer to a canonical decimal: white
// space trimmed, "$" and "," removed, one trailing "." dropped, leading
// zeros and trailing fractional zeros removed, "-0" made "0":
// "$1,000.50" -> "1000.5", "18.0" -> "18", "-.5" -> "-0.5". It reports
// false when what is left is not a plain decimal (signs other than a
// leading "-", exponents, fractions, words).
func NormalizeNumber(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.NewReplacer("$", "", ",", "").Replace(s)
	s = strings.TrimSuffix(s, ".")
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if !allDigits(intPart) || !allDigits(frac) || intPart+frac == "" {
		return "", false
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	frac = strings.TrimRight(frac, "0")
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxRatDigits bounds the digits parseRat accepts, so that a hostile answer
// of a million digits costs nothing to compare (no real answer comes close).
const maxRatDigits = 400

// parseRat reads a plain decimal ("-12", "0.25", ".5") as an exact rational.
// Unlike big.Rat.SetString it accepts no exponent ("1e999999999" would
// allocate without bound), no base prefix and no "a/b".
func parseRat(s string) (*big.Rat, bool) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if !allDigits(intPart) || !allDigits(frac) || intPart+frac == "" || len(intPart)+len(frac) > maxRatDigits {
		return nil, false
	}
	num, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return nil, false
	}
	if neg {
		num.Neg(num)
	}
	den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	return new(big.Rat).SetFrac(num, den), true
}
