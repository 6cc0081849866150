package executor

import (
	"encoding/json"
	"fmt"
	"io"

	"lrmc/digest"
	"lrmc/planner"
)

// checkSources asks Options.Sources whether n's source inputs are still
// the files planned.
func (x *execution) checkSources(n *planner.Node) error {
	if x.e.opts.Sources == nil {
		return nil
	}
	for _, in := range n.Inputs {
		if !in.IsSource() {
			continue
		}
		if err := x.e.opts.Sources.Check(in.Source); err != nil {
			return fmt.Errorf("input changed during apply: %w (nothing was stored for it; apply again to use the new contents)", err)
		}
	}
	return nil
}

// copySource copies the file of source node n to w, hashing the bytes as
// they are copied: an output must be the bytes whose digest keyed the
// graph, so a file replaced since it was planned is an error (the caller
// discards what was written).
func copySource(w io.Writer, n *planner.Node) (int64, error) {
	var p planner.SourceParams
	if err := json.Unmarshal(n.Params, &p); err != nil {
		return 0, fmt.Errorf("source %s: %w", n.Source, err)
	}
	f, _, err := digest.OpenFile(n.Source)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := digest.New()
	written, err := io.Copy(io.MultiWriter(w, h), f)
	if err != nil {
		return written, err
	}
	if got := h.Digest().String(); got != p.Digest {
		return written, fmt.Errorf("input changed during apply: %s no longer holds the bytes it was planned with (digest %s, planned %.12s)",
			n.Source, got[:12], p.Digest)
	}
	return written, nil
}
