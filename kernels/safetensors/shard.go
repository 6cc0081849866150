package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// IndexFileName is the name Hugging Face gives the index of a sharded
// checkpoint.
const IndexFileName = "model.safetensors.index.json"

// Reader is what a single file and a sharded checkpoint have in common: the
// lookup a model loader needs.
type Reader interface {
	Tensor(name string) (Tensor, bool)
	Names() []string
	Close() error
}

var (
	_ Reader = (*File)(nil)
	_ Reader = (*Index)(nil)
)

// indexJSON is the on-disk index: which shard holds which tensor.
type indexJSON struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Index is a sharded checkpoint opened as one set of tensors. Every shard is
// memory-mapped, as by Open.
type Index struct {
	// TotalSize is the index's metadata.total_size (the sum of the tensor
	// bytes), or 0 when absent.
	TotalSize int64

	shards []*File
	names  []string         // sorted
	where  map[string]*File // tensor name → shard
}

// OpenIndex opens the sharded checkpoint in dir through its
// model.safetensors.index.json. It checks the index against the shards up
// front, so that a tensor the index promises but its shard lacks, or a shard
// file that is missing, is reported at open time with the shard's name rather
// than surfacing later as a silently absent weight.
func OpenIndex(dir string) (_ *Index, err error) {
	indexPath := filepath.Join(dir, IndexFileName)
	raw, err := os.ReadFile(indexPath)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx indexJSON
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, &FormatError{File: indexPath, Msg: "index is not valid JSON", Err: err}
	}
	if len(idx.WeightMap) == 0 {
		return nil, &FormatError{File: indexPath, Msg: "weight_map is missing or empty"}
	}
	ix := &Index{where: make(map[string]*File, len(idx.WeightMap))}
	if ts, ok := idx.Metadata["total_size"].(float64); ok {
		ix.TotalSize = int64(ts)
	}
	defer func() {
		if err != nil {
			ix.Close()
		}
	}()
	byShard := make(map[string]*File)
	ix.names = make([]string, 0, len(idx.WeightMap))
	for name := range idx.WeightMap {
		ix.names = append(ix.names, name)
	}
	sort.Strings(ix.names)
	for _, name := range ix.names {
		shard := idx.WeightMap[name]
		// A shard must be a plain file beside the index; "../x" would let an
		// index read files anywhere.
		if shard == "" || shard != filepath.Base(shard) || strings.HasPrefix(shard, ".") {
			return nil, &FormatError{File: indexPath, Tensor: name, Msg: fmt.Sprintf("shard %q is not a file name in the index's directory", shard)}
		}
		f, ok := byShard[shard]
		if !ok {
			f, err = Open(filepath.Join(dir, shard))
			if err != nil {
				return nil, fmt.Errorf("safetensors: %s: shard of tensor %q: %w", indexPath, name, err)
			}
			byShard[shard] = f
			ix.shards = append(ix.shards, f)
		}
		if _, ok := f.Tensor(name); !ok {
			return nil, &FormatError{File: indexPath, Tensor: name, Msg: fmt.Sprintf("listed in shard %s, which does not contain it", shard)}
		}
		ix.where[name] = f
	}
	return ix, nil
}

// SingleFileName is the name Hugging Face gives an unsharded checkpoint.
const SingleFileName = "model.safetensors"

// OpenDir opens the checkpoint in a Hugging Face model directory: through
// model.safetensors.index.json when the directory has one, else the single
// model.safetensors.
func OpenDir(dir string) (Reader, error) {
	if _, err := os.Stat(filepath.Join(dir, IndexFileName)); err == nil {
		return OpenIndex(dir)
	}
	f, err := Open(filepath.Join(dir, SingleFileName))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Tensor returns the named tensor from whichever shard holds it.
func (ix *Index) Tensor(name string) (Tensor, bool) {
	f, ok := ix.where[name]
	if !ok {
		return Tensor{}, false
	}
	return f.Tensor(name)
}

// Names returns the names in the index, sorted.
func (ix *Index) Names() []string { return append([]string(nil), ix.names...) }

// Shard returns the path of the shard holding name, or "" if none does.
func (ix *Index) Shard(name string) string {
	if f, ok := ix.where[name]; ok {
		return f.path
	}
	return ""
}

// Close unmaps every shard.
func (ix *Index) Close() error {
	var errs []error
	for _, f := range ix.shards {
		errs = append(errs, f.Close())
	}
	ix.shards, ix.where = nil, nil
	return errors.Join(errs...)
}

// WriteSharded writes tensors, in order, into shards of at most maxShardBytes
// of tensor data each (a single larger tensor gets a shard of its own), named
// model-00001-of-0000N.safetensors as Hugging Face names them, plus the
// model.safetensors.index.json that maps every tensor to its shard. Each shard
// carries metadata. Every file is written atomically and the index last, so
// an interrupted write never leaves an index pointing at missing shards.
// It returns the shard file names.
func WriteSharded(dir string, tensors []Tensor, metadata map[string]string, maxShardBytes int64) ([]string, error) {
	if maxShardBytes <= 0 {
		return nil, fmt.Errorf("safetensors: maximum shard size %d is not positive", maxShardBytes)
	}
	var (
		groups [][]Tensor
		size   int64
		total  int64
	)
	for _, t := range tensors {
		n := int64(len(t.Data))
		if len(groups) == 0 || (size+n > maxShardBytes && size > 0) {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], t)
		size += n
		total += n
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("safetensors: no tensors to write to %s", dir)
	}
	idx := indexJSON{
		Metadata:  map[string]any{"total_size": total},
		WeightMap: make(map[string]string, len(tensors)),
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		for _, t := range g {
			if prev, dup := idx.WeightMap[t.Name]; dup {
				return nil, &FormatError{Tensor: t.Name, Msg: "duplicate tensor name (also in " + prev + ")"}
			}
			idx.WeightMap[t.Name] = names[i]
		}
	}
	for i, g := range groups {
		if err := WriteFile(filepath.Join(dir, names[i]), g, metadata); err != nil {
			return nil, err
		}
	}
	err := writeAtomic(filepath.Join(dir, IndexFileName), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(idx)
	})
	if err != nil {
		return nil, err
	}
	return names, nil
}
