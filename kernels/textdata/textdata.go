// Package textdata turns text corpora into token streams: it reads documents
// from a file, takes a fractional slice of them, and encodes them into one
// stream of token ids.
//
// It knows nothing about models; a tokenizer enters only through Encoder.
package textdata

import (
	"fmt"
	"math"
)

// Encoder turns text into token ids. The llama2.c tokenizer has exactly this
// method; other tokenizers adapt to it.
type Encoder interface {
	// Encode tokenizes text, prepending the BOS token when bos is set and
	// appending the EOS token when eos is set.
	Encode(text string, bos, eos bool) []int32
}

// Split returns the documents [floor(from·n), floor(to·n)) of docs, n =
// len(docs), sharing docs' backing array. Two splits of the same list with
// touching fractions (0 to 0.5, then 0.5 to 1) are disjoint and together cover
// it, which is how calibration and evaluation take separate parts of one file.
//
// A boundary that is meant to land exactly on a document (0.29 of 100) does so
// even though 0.29·100 is 28.999999999999996 in binary floating point.
//
// Split panics unless 0 ≤ from ≤ to ≤ 1: the fractions come from a validated
// recipe, so anything else is a programming error.
func Split(docs []string, from, to float64) []string {
	lo, hi := SplitRange(len(docs), from, to)
	return docs[lo:hi]
}

// SplitRange is the index range [lo, hi) that Split keeps of n items, for
// splitting other kinds of records the same way.
func SplitRange(n int, from, to float64) (lo, hi int) {
	if !(0 <= from && from <= to && to <= 1) {
		panic(fmt.Sprintf("textdata.Split: fractions [%v, %v) are not within 0 ≤ from ≤ to ≤ 1", from, to))
	}
	return boundary(from, n), boundary(to, n)
}

// boundary is floor(f·n), except that a product within a relative 1e-9 of an
// integer counts as that integer, so decimal fractions behave as written.
func boundary(f float64, n int) int {
	x := f * float64(n)
	if r := math.Round(x); math.Abs(x-r) <= 1e-9*math.Max(1, x) {
		return int(r)
	}
	return int(math.Floor(x))
}

// Stream encodes each document with a leading BOS token and no EOS, and
// concatenates the results in document order. A BOS therefore marks every
// document start inside the stream, as llama2.c's pretraining data does.
func Stream(docs []string, enc Encoder) []int32 {
	var stream []int32
	for _, d := range docs {
		stream = append(stream, enc.Encode(d, true, false)...)
	}
	return stream
}
