// Package llama2c reads and writes the formats of Karpathy's llama2.c: the
// legacy ("version 0") float32 checkpoint that run.c loads, and its
// SentencePiece-derived tokenizer.bin, whose encode/decode rules it
// reproduces exactly.
package llama2c

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"

	"lrmc/internal/atomicfile"
	"lrmc/kernels/internal/stored"
	"lrmc/kernels/llama"
)

// headerSize is the 7 little-endian int32 header: dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size (negative when the classifier is stored
// separately), seq_len.
const headerSize = 7 * 4

// llama2.c hard-codes these; the format has no field for them.
const (
	normEps   = 1e-5
	ropeTheta = 10000.0
)

// parseHeader turns the 28 header bytes into a validated configuration.
func parseHeader(b []byte) (llama.Config, error) {
	var h [7]int32
	for i := range h {
		h[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	c := llama.Config{
		Dim: int(h[0]), HiddenDim: int(h[1]), Layers: int(h[2]), Heads: int(h[3]), KVHeads: int(h[4]),
		Vocab: int(h[5]), SeqLen: int(h[6]), NormEps: normEps, RopeTheta: ropeTheta, SharedClassifier: true,
	}
	if c.Vocab < 0 {
		c.Vocab, c.SharedClassifier = -c.Vocab, false
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("bad header %v: %w", h, err)
	}
	return c, nil
}

// floatCount is the number of float32 values the checkpoint body holds.
func floatCount(c llama.Config) int64 {
	// The weights (a shared classifier stored once), then freq_cis_real and
	// freq_cis_imag, [seq_len, head_dim/2] each.
	return c.Params() + 2*int64(c.SeqLen)*int64(c.HeadDim()/2)
}

// ReadConfig reads only the header of the checkpoint at path, validates it
// and checks the file size it implies, without reading any weights.
func ReadConfig(path string) (llama.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return llama.Config{}, fmt.Errorf("llama2c: %w", err)
	}
	defer f.Close()
	c, _, err := readHeader(f, path)
	return c, err
}

// readHeader reads and checks the header and the file size; it returns the
// configuration and the number of body floats.
func readHeader(f *os.File, path string) (llama.Config, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return llama.Config{}, 0, fmt.Errorf("llama2c: %w", err)
	}
	var hb [headerSize]byte
	if _, err := io.ReadFull(f, hb[:]); err != nil {
		return llama.Config{}, 0, fmt.Errorf("llama2c: %s: truncated header: %d bytes, want %d", path, st.Size(), headerSize)
	}
	c, err := parseHeader(hb[:])
	if err != nil {
		return c, 0, fmt.Errorf("llama2c: %s: %w", path, err)
	}
	n, err := checkSize(c, st.Size())
	if err != nil {
		return c, 0, fmt.Errorf("llama2c: %s: %w", path, err)
	}
	// The size matches the header; a sparse file matches it too while
	// storing nothing, and Load would allocate all of it.
	if err := stored.Check(path, st); err != nil {
		return c, 0, fmt.Errorf("llama2c: %w (header %s)", err, describe(c))
	}
	return c, n, nil
}

// checkSize checks that a file of size bytes is exactly the checkpoint c
// describes and returns its number of body floats. The size is estimated in
// float64 first, so absurd header values cannot overflow the exact count.
func checkSize(c llama.Config, size int64) (int64, error) {
	d, h, kv := float64(c.Dim), float64(c.HiddenDim), float64(c.KVDim())
	est := float64(c.Vocab)*d*2 + float64(c.Layers)*(2*d+2*d*d+2*kv*d+3*h*d) + d + float64(c.SeqLen)*d
	if est > 1<<60 {
		return 0, fmt.Errorf("header %s implies about %.3g floats, more than any file can hold", describe(c), est)
	}
	n := floatCount(c)
	if want := headerSize + 4*n; size != want {
		what := "size mismatch"
		if size < want {
			what = "truncated"
		}
		return 0, fmt.Errorf("%s: file has %d bytes, header %s implies %d", what, size, describe(c), want)
	}
	return n, nil
}

// describe names a configuration's header fields for error messages.
func describe(c llama.Config) string {
	cls := "shared classifier"
	if !c.SharedClassifier {
		cls = "separate classifier"
	}
	return fmt.Sprintf("(dim %d, hidden_dim %d, layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d, %s)",
		c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KVHeads, c.Vocab, c.SeqLen, cls)
}

// Load reads a legacy llama2.c checkpoint. All weights live in one
// allocation; the header and the file size are checked before it is made.
func Load(path string) (*llama.Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: %w", err)
	}
	defer f.Close()
	c, n, err := readHeader(f, path)
	if err != nil {
		return nil, err
	}
	data := make([]float32, n)
	if err := readFloats(bufio.NewReaderSize(f, 1<<20), data); err != nil {
		return nil, fmt.Errorf("llama2c: %s: reading weights: %w", path, err)
	}
	m := &llama.Model{Config: c}
	take := func(k int) []float32 {
		t := data[:k:k]
		data = data[k:]
		return t
	}
	d, h, kv, L := c.Dim, c.HiddenDim, c.KVDim(), c.Layers
	m.Embedding = take(c.Vocab * d)
	m.Layers = make([]llama.Layer, L)
	// The file stores each tensor kind for all layers before the next kind.
	for _, field := range []struct {
		get  func(*llama.Layer) *[]float32
		size int
	}{
		{func(l *llama.Layer) *[]float32 { return &l.AttnNorm }, d},
		{func(l *llama.Layer) *[]float32 { return &l.Wq }, d * d},
		{func(l *llama.Layer) *[]float32 { return &l.Wk }, kv * d},
		{func(l *llama.Layer) *[]float32 { return &l.Wv }, kv * d},
		{func(l *llama.Layer) *[]float32 { return &l.Wo }, d * d},
		{func(l *llama.Layer) *[]float32 { return &l.FFNNorm }, d},
		{func(l *llama.Layer) *[]float32 { return &l.W1 }, h * d},
		{func(l *llama.Layer) *[]float32 { return &l.W2 }, d * h},
		{func(l *llama.Layer) *[]float32 { return &l.W3 }, h * d},
	} {
		for i := range m.Layers {
			*field.get(&m.Layers[i]) = take(field.size)
		}
	}
	m.FinalNorm = take(d)
	take(2 * c.SeqLen * (c.HeadDim() / 2)) // freq_cis_real, freq_cis_imag: run.c ignores them too
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	} else {
		m.Classifier = take(c.Vocab * d)
	}
	return m, nil
}

// Write writes m as a legacy llama2.c checkpoint. The freq_cis tables, which
// run.c skips, are recomputed with export.py's formula (see FreqCis). Every
// header and weight byte of a loaded checkpoint writes back unchanged; the
// freq_cis values of a PyTorch export may differ in the last bit, because
// PyTorch's vectorised float32 cos/sin are not correctly rounded. The
// format is float32: a 16-bit model is written widened (exactly).
func Write(w io.Writer, m *llama.Model) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("llama2c: write: %w", err)
	}
	m = m.Float32()
	c := m.Config
	switch {
	case !c.Uniform():
		return fmt.Errorf("llama2c: write: the model's blocks differ in heads or MLP width; the format holds one shape for every block (export GGUF)")
	case c.OutBias:
		return fmt.Errorf("llama2c: write: the format has no attention output or down projection biases (export GGUF)")
	case c.QKVBias:
		return fmt.Errorf("llama2c: write: the format has no q/k/v biases")
	case c.QKNorm:
		return fmt.Errorf("llama2c: write: the format has no q/k norms")
	case c.HeadSize != 0 && c.HeadSize*c.Heads != c.Dim:
		return fmt.Errorf("llama2c: write: the format needs heads of dim/heads = %d, model has %d", c.Dim/c.Heads, c.HeadSize)
	case c.RopeScaling.Type != "":
		return fmt.Errorf("llama2c: write: the format has no rope scaling (model has %q)", c.RopeScaling.Type)
	}
	// llama2.c rotates adjacent pairs: permute a rotate-half model's q/k rows.
	m = m.WithRopeStyle(llama.RopeInterleaved)
	c = m.Config
	if c.NormEps != normEps || c.RopeTheta != ropeTheta {
		return fmt.Errorf("llama2c: write: the format fixes norm_eps=%g and rope_theta=%g, model has %g and %g",
			normEps, ropeTheta, c.NormEps, c.RopeTheta)
	}
	vocab := c.Vocab
	if !c.SharedClassifier {
		vocab = -vocab
	}
	for _, v := range []int{c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KVHeads, vocab, c.SeqLen} {
		if v > math.MaxInt32 || v < math.MinInt32 {
			return fmt.Errorf("llama2c: write: header value %d does not fit an int32", v)
		}
	}
	// bufio.Writer keeps the first write error and returns it from Flush, so
	// the individual writes below need no checks.
	bw := bufio.NewWriterSize(w, 1<<20)
	var hb [headerSize]byte
	for i, v := range []int{c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KVHeads, vocab, c.SeqLen} {
		binary.LittleEndian.PutUint32(hb[4*i:], uint32(int32(v)))
	}
	bw.Write(hb[:])
	var b [4]byte // one buffer for all values: it escapes into bw.Write
	put := func(t []float32) {
		for _, v := range t {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
			bw.Write(b[:])
		}
	}
	put(m.Embedding)
	for _, get := range []func(l *llama.Layer) []float32{
		func(l *llama.Layer) []float32 { return l.AttnNorm },
		func(l *llama.Layer) []float32 { return l.Wq },
		func(l *llama.Layer) []float32 { return l.Wk },
		func(l *llama.Layer) []float32 { return l.Wv },
		func(l *llama.Layer) []float32 { return l.Wo },
		func(l *llama.Layer) []float32 { return l.FFNNorm },
		func(l *llama.Layer) []float32 { return l.W1 },
		func(l *llama.Layer) []float32 { return l.W2 },
		func(l *llama.Layer) []float32 { return l.W3 },
	} {
		for i := range m.Layers {
			put(get(&m.Layers[i]))
		}
	}
	put(m.FinalNorm)
	// The tables are written a row at a time: sized by seq_len alone, they
	// would take 2·seq_len·head_dim/2 floats of memory at once.
	re, im := make([]float32, c.HeadDim()/2), make([]float32, c.HeadDim()/2)
	freqs := freqCisFreqs(c)
	for _, part := range [][]float32{re, im} {
		for t := range c.SeqLen {
			freqCisRow(freqs, t, re, im)
			put(part)
		}
	}
	if !c.SharedClassifier {
		put(m.Classifier)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("llama2c: write: %w", err)
	}
	return nil
}

// FreqCis returns the rotary tables llama2.c's export.py stores after the
// final norm, [seq_len, head_dim/2] each: cos and sin of t·f_i with
// f_i = 1/theta^(2i/head_dim), every step rounded to float32 as PyTorch's
// float32 arithmetic does, cos and sin correctly rounded.
func FreqCis(c llama.Config) (re, im []float32) {
	half := c.HeadDim() / 2
	freqs := freqCisFreqs(c)
	re = make([]float32, c.SeqLen*half)
	im = make([]float32, c.SeqLen*half)
	for t := range c.SeqLen {
		freqCisRow(freqs, t, re[t*half:(t+1)*half], im[t*half:(t+1)*half])
	}
	return re, im
}

// freqCisFreqs is f_i = 1/theta^(2i/head_dim), i < head_dim/2, in float32.
func freqCisFreqs(c llama.Config) []float32 {
	freqs := make([]float32, c.HeadDim()/2)
	for i := range freqs {
		e := float32(2*i) / float32(c.HeadDim())
		freqs[i] = 1 / float32(math.Pow(c.RopeTheta, float64(e)))
	}
	return freqs
}

// freqCisRow writes row t of the tables: cos and sin of t·f_i.
func freqCisRow(freqs []float32, t int, re, im []float32) {
	for i, f := range freqs {
		a := float64(float32(t) * f)
		re[i] = float32(math.Cos(a))
		im[i] = float32(math.Sin(a))
	}
}

// readFloats fills dst with little-endian float32 values from r.
func readFloats(r io.Reader, dst []float32) error {
	buf := make([]byte, 64<<10)
	for len(dst) > 0 {
		k := min(len(dst), len(buf)/4)
		if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("truncated: %w", err)
			}
			return err
		}
		for i := range k {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
		}
		dst = dst[k:]
	}
	return nil
}

// WriteFile writes m to path atomically (internal/atomicfile), so a
// reader never sees a partial checkpoint and a failed write leaves no file
// behind.
func WriteFile(path string, m *llama.Model) error {
	var encErr error
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		encErr = Write(w, m)
		return encErr
	})
	switch {
	case encErr != nil: // already says "llama2c: write: ..."
		return fmt.Errorf("%w (writing %s)", encErr, path)
	case err != nil:
		return fmt.Errorf("llama2c: %w", err)
	}
	return nil
}
