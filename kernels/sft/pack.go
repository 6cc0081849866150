package sft

import "fmt"

// Pack concatenates the examples and cuts the result into rows of seqLen
// tokens, so that training batches have a fixed shape without padding. The
// tokens left over after the last full row are dropped: fewer than seqLen of
// them, from the last example. An example may straddle two rows; its tokens
// at the start of a row then lack their earlier context, which packing
// accepts in exchange for wasting no positions.
//
// tokens and mask hold rows·seqLen entries. Pack panics when seqLen < 1.
func Pack(examples []Example, seqLen int) (tokens []int32, mask []bool, rows int) {
	if seqLen < 1 {
		panic(fmt.Sprintf("sft.Pack: seqLen %d < 1", seqLen))
	}
	n := 0
	for _, ex := range examples {
		n += len(ex.Tokens)
	}
	rows = n / seqLen
	tokens = make([]int32, 0, rows*seqLen)
	mask = make([]bool, 0, rows*seqLen)
	for _, ex := range examples {
		room := rows*seqLen - len(tokens)
		if room == 0 {
			break
		}
		k := min(room, len(ex.Tokens))
		tokens = append(tokens, ex.Tokens[:k]...)
		mask = append(mask, ex.Mask[:k]...)
	}
	return tokens, mask, rows
}

// Targets returns the next-token targets of rows sequences of seqLen
// tokens, in the convention of kernels/train's Batch.Targets: position i
// of a row targets token i+1 of the row when the mask trains that token,
// and -1 (no loss) when it does not or when i is the row's last position.
// A nil mask trains every token.
func Targets(tokens []int32, mask []bool, rows, seqLen int) []int32 {
	if len(tokens) != rows*seqLen || mask != nil && len(mask) != len(tokens) {
		panic(fmt.Sprintf("sft.Targets: %d tokens and %d mask entries for %d rows of %d", len(tokens), len(mask), rows, seqLen))
	}
	out := make([]int32, len(tokens))
	for r := range rows {
		for i := range seqLen {
			p := r*seqLen + i
			out[p] = -1
			if i+1 < seqLen && (mask == nil || mask[p+1]) {
				out[p] = tokens[p+1]
			}
		}
	}
	return out
}
