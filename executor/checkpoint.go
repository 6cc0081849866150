package executor

import (
	"encoding/binary"
	"errors"
	"fmt"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/planner"
)

// checkpointKey is where a node's checkpoint lives: derived from the node's
// key, so the same work finds its own checkpoint and nothing else does.
func checkpointKey(n *planner.Node) digest.Digest {
	return digest.Of(append([]byte("lrmc checkpoint\x00"), n.Key[:]...))
}

// CheckpointKey is the cache key of n's checkpoint, for the cache's
// bookkeeping of what an apply needs (an interrupted training's state).
func CheckpointKey(n *planner.Node) digest.Digest { return checkpointKey(n) }

// checkpoints implements Checkpoints on the executor's store.
type checkpoints struct {
	x    *execution
	n    *planner.Node
	key  digest.Digest
	used bool
}

func (c *checkpoints) Save(step int64, state []byte) error {
	c.used = true
	b := make([]byte, 8+len(state))
	binary.LittleEndian.PutUint64(b, uint64(step))
	copy(b[8:], state)
	if err := c.x.e.store.Put(c.key, c.n.Op+".checkpoint", fmt.Sprintf("%s: checkpoint at step %d", c.n.Label, step), b); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}

func (c *checkpoints) Load() (int64, []byte, bool, error) {
	b, _, err := c.x.e.store.Get(c.key)
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return 0, nil, false, nil
	case errors.Is(err, cache.ErrCorrupt):
		c.x.e.opts.Log.Warn("corrupt checkpoint dropped; starting over", "node", c.n.Label, "error", err)
		return 0, nil, false, nil
	case err != nil:
		return 0, nil, false, fmt.Errorf("loading checkpoint: %w", err)
	}
	if len(b) < 8 {
		return 0, nil, false, nil
	}
	c.used = true
	step := int64(binary.LittleEndian.Uint64(b))
	c.x.e.emit(Event{Event: EventResumed, Node: c.n.Key.String(), Op: c.n.Op, Label: c.n.Label, Runs: c.n.Runs, Done: step})
	return step, b[8:], true, nil
}
