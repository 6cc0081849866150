// Package hfdataset reads Hugging Face datasets as the hub stores them:
// "hf-dataset:ORG/NAME[@REVISION]" is resolved offline in the local hub
// cache (datasets--ORG--NAME/snapshots/<commit>/<config>/<split>-*.parquet,
// revisions by refs/<branch>), and its parquet files are read into the
// records a jsonl file gives (objects of strings, float64 numbers,
// booleans, lists and nested objects). It never downloads anything.
package hfdataset

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"lrmc/kernels/modelref"
)

// Prefix starts a reference to a dataset repository on the hub.
const Prefix = "hf-dataset:"

// Resolved is one split of one config of a dataset in the hub cache.
type Resolved struct {
	Ref string // the reference as given
	modelref.Snapshot
	// Config is the config (subset) whose directory holds the split, as
	// found: the one asked for, else "data" or "default".
	Config, Split string
	// Files are the split's parquet files (its shards), in name order,
	// which is their order in the split.
	Files []string
}

// name is a config or split name: no separators, nothing hidden.
var name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Resolve finds the parquet files of split in config of the dataset ref
// names. An empty config means the dataset's only one, which the hub
// writes under data/ (or default/). The split's files are
// <config>/<split>-*.parquet, <config>/<split>.parquet or
// <config>/<split>/*.parquet (the parquet-conversion layout). Errors say
// what was looked for and list what is there.
func Resolve(ref, config, split string) (Resolved, error) {
	spec, ok := strings.CutPrefix(ref, Prefix)
	if !ok {
		return Resolved{}, fmt.Errorf("%q is not a %sORG/NAME[@REVISION] reference", ref, Prefix)
	}
	snap, err := modelref.FindSnapshot("datasets", ref, spec)
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{Ref: ref, Snapshot: snap, Split: split}
	if config != "" && !name.MatchString(config) {
		return Resolved{}, fmt.Errorf("%q: config %q is not a config name", ref, config)
	}
	if split == "" {
		return Resolved{}, fmt.Errorf("%q: no split named (train, validation, test, …)", ref)
	}
	if !name.MatchString(split) {
		return Resolved{}, fmt.Errorf("%q: split %q is not a split name", ref, split)
	}
	configs := dirs(snap.Path)
	switch {
	case config != "":
		if !slices.Contains(configs, config) {
			return Resolved{}, fmt.Errorf("%q: no config %q (no directory %s); configs: %s",
				ref, config, filepath.Join(snap.Path, config), list(configs))
		}
		r.Config = config
	case slices.Contains(configs, "data"):
		r.Config = "data"
	case slices.Contains(configs, "default"):
		r.Config = "default"
	default:
		return Resolved{}, fmt.Errorf("%q: name a config; configs in %s: %s", ref, snap.Path, list(configs))
	}
	dir := filepath.Join(snap.Path, r.Config)
	if r.Files, err = splitFiles(dir, split); err != nil {
		return Resolved{}, fmt.Errorf("%q: %w", ref, err)
	}
	if len(r.Files) == 0 {
		return Resolved{}, fmt.Errorf("%q: config %s has no split %q (no %s-*.parquet, %s.parquet or %s/*.parquet in %s); splits: %s",
			ref, r.Config, split, split, split, split, dir, list(splits(dir)))
	}
	return r, nil
}

// splitFiles lists the parquet files of split in a config's directory.
func splitFiles(dir, split string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		n := e.Name()
		if n == split+".parquet" || strings.HasPrefix(n, split+"-") && strings.HasSuffix(n, ".parquet") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	if len(files) > 0 {
		return files, nil
	}
	sub := filepath.Join(dir, split)
	if st, err := os.Stat(sub); err != nil || !st.IsDir() {
		return nil, nil
	}
	entries, err = os.ReadDir(sub)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".parquet") {
			files = append(files, filepath.Join(sub, n))
		}
	}
	return files, nil
}

// dirs lists the non-hidden subdirectories of dir (links to directories
// included, as the hub cache's snapshots hold no links to directories but
// a hand-made cache may).
func dirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// splits lists the split names of a config's directory, for messages.
func splits(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		s, isFile := strings.CutSuffix(n, ".parquet")
		if isFile {
			s, _, _ = strings.Cut(s, "-")
		} else if !e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
