package llama

import "math"

// RopeFreqs returns the rotation frequency of each pair i of a head:
// theta^(-2i/headDim), computed in float32 as llama2.c's run.c does
// (1/powf(theta, 2i/(float)head_size)) so that generation matches it; the
// same float32 steps are what transformers' default rope initialisation
// takes. A "llama3" RopeScaling then rescales them.
func RopeFreqs(c Config) []float32 {
	hd := c.HeadDim()
	f := make([]float32, hd/2)
	for i := range f {
		e := float32(2*i) / float32(hd)
		f[i] = 1 / float32(math.Pow(c.RopeTheta, float64(e)))
	}
	if c.RopeScaling.Type == "llama3" {
		llama3Scale(f, c.RopeScaling)
	}
	return f
}

// llama3Scale applies Llama 3.1's frequency rescaling in place, step by step
// as transformers' _compute_llama3_parameters does on a float32 tensor:
// Python scalars are rounded to float32 where they meet the tensor, and
// "scalar / tensor" is computed as reciprocal(tensor)·scalar, which is how
// torch implements it. Matching its rounding keeps a checkpoint's logits
// where Hugging Face puts them.
func llama3Scale(f []float32, s RopeScaling) {
	factor := float32(s.Factor)
	low := float32(s.LowFreqFactor)
	old := float32(s.OriginalMaxPositions)
	lowWavelen := float32(float64(s.OriginalMaxPositions) / s.LowFreqFactor)
	highWavelen := float32(float64(s.OriginalMaxPositions) / s.HighFreqFactor)
	span := float32(s.HighFreqFactor - s.LowFreqFactor)
	for i, inv := range f {
		wavelen := (1 / inv) * float32(2*math.Pi)
		switch {
		case wavelen > lowWavelen:
			f[i] = inv / factor
		case wavelen < highWavelen:
			// High frequencies are kept.
		default:
			smooth := ((1/wavelen)*old - low) / span
			f[i] = float32(float32((1-smooth)*inv)/factor) + float32(smooth*inv)
		}
	}
}

// ropeAt writes cos and sin of pos·freq[i] for every pair, rounding the angle
// to float32 first as run.c (and transformers' float32 matmul of positions by
// frequencies) does.
func ropeAt(cos, sin, freqs []float32, pos int) {
	for i, f := range freqs {
		a := float64(float32(pos) * f)
		cos[i] = float32(math.Cos(a))
		sin[i] = float32(math.Sin(a))
	}
}

// rotate applies the rotary embedding to every head of vec (heads of width
// 2·len(cos) laid side by side): each pair (v0, v1) becomes
// (v0·cos − v1·sin, v0·sin + v1·cos). RopeInterleaved pairs adjacent
// components (2i, 2i+1), the llama2.c / GGUF llama layout; RopeHalf pairs
// (i, i+HeadDim/2), Hugging Face's q·cos + rotate_half(q)·sin, which rounds
// the same products in the same order.
func rotate(vec, cos, sin []float32, style RopeStyle) {
	half := len(cos)
	hd := 2 * half
	for h := 0; h+hd <= len(vec); h += hd {
		v := vec[h : h+hd]
		for i := range cos {
			a, b := 2*i, 2*i+1
			if style == RopeHalf {
				a, b = i, i+half
			}
			c, s := cos[i], sin[i]
			v0, v1 := v[a], v[b]
			v[a] = float32(v0*c) - float32(v1*s)
			v[b] = float32(v0*s) + float32(v1*c)
		}
	}
}

// WithRopeStyle returns the same function as m computed with the given
// rotary pairing: the rows of Wq and Wk (and of Bq, Bk, QNorm and KNorm) are
// reordered within every head so that the pairs the new style rotates hold
// what the old style's pairs held. This is the permutation llama.cpp's
// converter applies to Hugging Face Llama checkpoints, and its inverse.
// Query–key products are sums over a head's components, so only their
// order, not their value, changes: logits agree to rounding. The permuted
// tensors are new; every other slice is shared with m. When m already uses
// style, m itself is returned.
func (m *Model) WithRopeStyle(style RopeStyle) *Model {
	if m.Config.RopeStyle == style {
		return m
	}
	hd := m.Config.HeadDim()
	half := hd / 2
	// perm[j] is the row of the old layout that lands at row j of a head.
	perm := make([]int, hd)
	for i := range half {
		if style == RopeHalf { // from interleaved
			perm[i], perm[i+half] = 2*i, 2*i+1
		} else { // from half
			perm[2*i], perm[2*i+1] = i, i+half
		}
	}
	rows := func(w []float32, width int) []float32 { return permuteHeadRows(w, width, perm) }
	rows16 := func(w []uint16, width int) []uint16 { return permuteHeadRows(w, width, perm) }
	out := *m
	out.Config.RopeStyle = style
	out.Layers = make([]Layer, len(m.Layers))
	d := m.Config.Dim
	for i, l := range m.Layers {
		l.Wq, l.Wk = rows(l.Wq, d), rows(l.Wk, d)
		l.Bq, l.Bk = rows(l.Bq, 1), rows(l.Bk, 1)
		l.QNorm, l.KNorm = rows(l.QNorm, 1), rows(l.KNorm, 1)
		if l.Half != nil {
			h := *l.Half
			h.Wq, h.Wk = rows16(h.Wq, d), rows16(h.Wk, d)
			l.Half = &h
		}
		out.Layers[i] = l
	}
	return &out
}

// permuteHeadRows reorders the rows (each width wide) of w within every
// group of len(perm) rows (a head): row j of a group is the old row perm[j].
// It returns a new slice, or nil for a nil w.
func permuteHeadRows[T any](w []T, width int, perm []int) []T {
	if w == nil {
		return nil
	}
	hd := len(perm)
	out := make([]T, len(w))
	for h := 0; h < len(w)/width; h += hd {
		for j, src := range perm {
			copy(out[(h+j)*width:(h+j+1)*width], w[(h+src)*width:(h+src+1)*width])
		}
	}
	return out
}
