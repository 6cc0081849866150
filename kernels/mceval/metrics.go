package mceval

import (
	"math"
	"unicode/utf8"
)

// Prediction is lm-eval's multiple_choice process_results for one item:
// acc is argmax Σ log p, acc_norm argmax Σ log p / len(choice), where
// len is the choice's length in characters (Python's len of the choice
// string, without the delimiter; bytes for ASCII text). Ties go to the
// first choice, as numpy's argmax does.
func Prediction(lls []float64, choices []string) (pred, predNorm int) {
	best, bestNorm := math.Inf(-1), math.Inf(-1)
	for i, ll := range lls {
		if ll > best {
			best, pred = ll, i
		}
		norm := ll / float64(utf8.RuneCountInString(choices[i]))
		if norm > bestNorm {
			bestNorm, predNorm = norm, i
		}
	}
	return pred, predNorm
}

// Mean returns the mean of xs and its standard error as lm-eval reports it
// (sample standard deviation with n−1, over √n); NaN when undefined.
func Mean(xs []float64) (mean, stderr float64) {
	n := float64(len(xs))
	for _, x := range xs {
		mean += x
	}
	mean /= n
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}
