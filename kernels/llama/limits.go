package llama

import "fmt"

// Caps on the sizes a configuration may declare. Model files are read from
// untrusted places, and every reader turns these numbers into allocations
// (a planner node per layer, a vocabulary table, a key/value cache), so a
// hostile header must fail here, before anything is sized by it. Each cap is
// far above any released model, so no real checkpoint comes near one.
const (
	// MaxLayers: the deepest released Llama-family model has 126 blocks
	// (Llama 3.1 405B). The planner plans per layer.
	MaxLayers = 4096
	// MaxDim: the widest residual stream released is 16384 (Llama 3.1 405B).
	MaxDim = 1 << 17
	// MaxHiddenDim: the widest MLP released is 53248 (Llama 3.1 405B).
	MaxHiddenDim = 1 << 20
	// MaxHeads: 128 query heads is the most released.
	MaxHeads = 1 << 12
	// MaxHeadDim: released heads are 64 to 256 wide.
	MaxHeadDim = 1 << 12
	// MaxVocab: the largest released vocabularies have about 262k tokens.
	MaxVocab = 1 << 24
	// MaxSeqLen: the longest declared context is about 10.5M positions
	// (Llama 4 Scout). Nothing is sized by it alone (prefill and decoding
	// size their tables by the tokens they process), but it bounds what a
	// header can make a writer emit, e.g. llama2.c's freq_cis tables.
	MaxSeqLen = 1 << 24
)

// CheckLimit reports a size above its cap, naming the field as the file
// spells it (num_hidden_layers, llama.block_count, …).
func CheckLimit(field string, v, limit int) error {
	if v > limit {
		return fmt.Errorf("%s is %d, more than the limit of %d (far above any released model): refusing to size anything by it", field, v, limit)
	}
	return nil
}

// checkLimits applies the caps under llama.Config's own field names.
func (c Config) checkLimits() []error {
	var errs []error
	for _, f := range []struct {
		name     string
		v, limit int
	}{
		{"dim", c.Dim, MaxDim},
		{"hidden_dim", c.HiddenDim, MaxHiddenDim},
		{"layers", c.Layers, MaxLayers},
		{"heads", c.Heads, MaxHeads},
		{"kv_heads", c.KVHeads, MaxHeads},
		{"head_size", c.HeadSize, MaxHeadDim},
		{"vocab", c.Vocab, MaxVocab},
		{"seq_len", c.SeqLen, MaxSeqLen},
	} {
		if err := CheckLimit(f.name, f.v, f.limit); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
