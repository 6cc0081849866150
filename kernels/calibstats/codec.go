package calibstats

import (
	"encoding/binary"
	"fmt"
	"math"

	"lrmc/kernels/llama"
)

// The byte format of a Layer, little-endian:
//
//	magic   "LRMCSTAT"
//	version uint32 (formatVersion)
//	layer   uint32
//	nsites  uint32 (1…4)
//	nsites × {site uint32, width uint32, flags uint32 (bit 0: Gram present),
//	          tokens uint64, sequences uint64}
//	then per site, in header order: Sum [width]float64, SumSq [width]float64,
//	          Gram [width²]float64 when flagged
//
// Decoding checks every header field and that the file's length is exactly
// what the headers imply before it allocates anything.
const (
	magic         = "LRMCSTAT"
	formatVersion = 1
	siteHeader    = 4 + 4 + 4 + 8 + 8
	flagGram      = 1
	// maxWidth bounds a site's width so that width² × 8 cannot overflow and
	// a corrupt header cannot ask for an absurd allocation.
	maxWidth = 1 << 20
)

// MarshalBinary encodes l in the format above.
func (l *Layer) MarshalBinary() ([]byte, error) {
	if len(l.Sites) < 1 || len(l.Sites) > llama.NumSites {
		return nil, fmt.Errorf("calibration statistics: cannot encode %d sites", len(l.Sites))
	}
	if l.Layer < 0 || int64(l.Layer) > math.MaxUint32 {
		return nil, fmt.Errorf("calibration statistics: cannot encode block %d", l.Layer)
	}
	size := len(magic) + 12 + len(l.Sites)*siteHeader
	for _, s := range l.Sites {
		if s.Width < 1 || s.Width > maxWidth || len(s.Sum) != s.Width || len(s.SumSq) != s.Width ||
			(s.Gram != nil && len(s.Gram) != s.Width*s.Width) {
			return nil, fmt.Errorf("calibration statistics: %s of width %d holds %d sums, %d squares, %d Gram entries",
				s.Site, s.Width, len(s.Sum), len(s.SumSq), len(s.Gram))
		}
		size += 8 * (2*s.Width + len(s.Gram))
	}
	b := make([]byte, 0, size)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(l.Layer))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(l.Sites)))
	for _, s := range l.Sites {
		var flags uint32
		if s.Gram != nil {
			flags |= flagGram
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(s.Site))
		b = binary.LittleEndian.AppendUint32(b, uint32(s.Width))
		b = binary.LittleEndian.AppendUint32(b, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Tokens))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Sequences))
	}
	for _, s := range l.Sites {
		for _, v := range [][]float64{s.Sum, s.SumSq, s.Gram} {
			for _, f := range v {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
			}
		}
	}
	return b, nil
}

// Unmarshal decodes statistics encoded by MarshalBinary. Errors say what is
// wrong (magic, version, a site's field, the length) and nothing is
// allocated before the length is known to match the headers.
func Unmarshal(b []byte) (*Layer, error) {
	fail := func(format string, a ...any) (*Layer, error) {
		return nil, fmt.Errorf("calibration statistics: "+format, a...)
	}
	if len(b) < len(magic)+12 {
		return fail("%d bytes are too short for a header", len(b))
	}
	if string(b[:len(magic)]) != magic {
		return fail("bad magic %q, want %q", b[:len(magic)], magic)
	}
	p := len(magic)
	u32 := func() uint32 { v := binary.LittleEndian.Uint32(b[p:]); p += 4; return v }
	u64 := func() uint64 { v := binary.LittleEndian.Uint64(b[p:]); p += 8; return v }
	if v := u32(); v != formatVersion {
		return fail("format version %d, this lrmc reads %d", v, formatVersion)
	}
	layer := u32()
	n := u32()
	if n < 1 || n > llama.NumSites {
		return fail("header says %d sites, want 1…%d", n, llama.NumSites)
	}
	if len(b)-p < int(n)*siteHeader {
		return fail("%d bytes are too short for %d site headers", len(b), n)
	}
	type head struct {
		site             llama.Site
		width            int
		gram             bool
		tokens, sequence int64
	}
	heads := make([]head, n)
	want := int64(p) + int64(n)*siteHeader
	seen := map[llama.Site]bool{}
	for i := range heads {
		site, width, flags, tokens, seqs := u32(), u32(), u32(), u64(), u64()
		if site >= llama.NumSites {
			return fail("site %d: unknown site id %d", i, site)
		}
		s := llama.Site(site)
		if seen[s] {
			return fail("site %s appears twice", s)
		}
		seen[s] = true
		if width < 1 || width > maxWidth {
			return fail("%s: width %d outside 1…%d", s, width, maxWidth)
		}
		if flags&^flagGram != 0 {
			return fail("%s: unknown flags %#x", s, flags)
		}
		if tokens > math.MaxInt64 || seqs > math.MaxInt64 || seqs > tokens {
			return fail("%s: %d tokens in %d windows", s, tokens, seqs)
		}
		h := head{site: s, width: int(width), gram: flags&flagGram != 0, tokens: int64(tokens), sequence: int64(seqs)}
		want += 16 * int64(width)
		if h.gram {
			want += 8 * int64(width) * int64(width)
		}
		heads[i] = h
	}
	if int64(len(b)) != want {
		return fail("%d bytes, the headers say %d", len(b), want)
	}
	out := &Layer{Layer: int(layer), Sites: make([]Site, n)}
	floats := func(k int) []float64 {
		v := make([]float64, k)
		for i := range v {
			v[i] = math.Float64frombits(u64())
		}
		return v
	}
	for i, h := range heads {
		s := Site{Site: h.site, Width: h.width, Tokens: h.tokens, Sequences: h.sequence}
		s.Sum = floats(h.width)
		s.SumSq = floats(h.width)
		if h.gram {
			s.Gram = floats(h.width * h.width)
		}
		out.Sites[i] = s
	}
	return out, nil
}
