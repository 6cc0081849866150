package llama

// Site is a point inside a transformer block where linear layers read their
// input: the four distinct inputs of a block's seven projections.
type Site int

const (
	SiteAttnIn Site = iota // the attention-normed hidden state, read by q, k and v: [rows, Dim]
	SiteOIn                // the attention's output, read by o: [rows, QDim]
	SiteMLPIn              // the MLP-normed hidden state, read by gate and up: [rows, Dim]
	SiteDownIn             // the SwiGLU activation, read by down: [rows, HiddenDim]

	NumSites = 4
)

// String is the site's name in messages and in the statistics' byte format.
func (s Site) String() string {
	switch s {
	case SiteAttnIn:
		return "attn_in"
	case SiteOIn:
		return "o_in"
	case SiteMLPIn:
		return "mlp_in"
	case SiteDownIn:
		return "down_in"
	}
	return "site?"
}

// Width is the number of input channels at s in a model of configuration c.
func (s Site) Width(c Config) int {
	switch s {
	case SiteOIn:
		return c.QDim()
	case SiteDownIn:
		return c.HiddenDim
	}
	return c.Dim
}

// Tap observes the input x of the linear layers at site s, [rows, width]
// row-major, where rows is the b·t of the block's call. x belongs to the
// block and is overwritten after the tap returns: a tap reads it, never keeps
// or changes it.
type Tap func(s Site, x []float32, width int)

func (tp Tap) at(s Site, x []float32, width int) {
	if tp != nil {
		tp(s, x, width)
	}
}

// BlockTap is Block, handing every linear layer's input to tap as the block
// computes it, in the order SiteAttnIn, SiteOIn, SiteMLPIn, SiteDownIn. It is
// the forward hook calibration statistics are gathered through, so they see
// exactly the activations of the forward pass and nothing runs twice.
func (m *Model) BlockTap(i int, h []float32, b, t int, tap Tap) []float32 {
	return m.block(i, h, b, t, nil, tap, nil, nil)
}
