package llama

import "unsafe"

// Pages is the file mapping that a model's 16-bit weights alias when a
// loader maps them instead of copying them (kernels/hf does so for a
// checkpoint stored in the requested 16-bit type): the weights then live in
// the page cache, not on the Go heap, and only the pages a computation
// touches are resident.
type Pages interface {
	// Evict drops the resident pages under b when b lies inside the
	// mapping (b's data stays readable, paged in again on the next
	// touch); it ignores any other memory.
	Evict(b []byte) bool
}

// EvictLayer hints that block i's 16-bit weights will not be needed soon:
// when they are mapped from a file (Model.Mapped), their pages leave the
// process's resident set, so a pass over the blocks one by one holds one
// block's weights in memory, not the whole model's. Weights on the heap
// are untouched. It changes no value.
func (m *Model) EvictLayer(i int) {
	if m.Mapped == nil || i < 0 || i >= len(m.Layers) || m.Layers[i].Half == nil {
		return
	}
	for _, t := range m.Layers[i].Half.list() {
		if len(*t) > 0 {
			m.Mapped.Evict(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(*t))), 2*len(*t)))
		}
	}
}
