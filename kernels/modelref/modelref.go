// Package modelref resolves the model references a recipe names to files
// on this machine: a Hugging Face checkpoint directory, a GGUF file, a
// llama2.c checkpoint, or hf:ORG/NAME[@REVISION], looked up offline in the
// local Hugging Face hub cache. It never downloads anything.
package modelref

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"lrmc/kernels/slicegpt"
)

// Kind is the format of a resolved model.
type Kind int

const (
	// HFDir is a Hugging Face checkpoint directory (config.json and
	// safetensors weights).
	HFDir Kind = iota + 1
	// GGUF is a llama.cpp GGUF file.
	GGUF
	// Llama2c is a llama2.c checkpoint (.bin).
	Llama2c
)

func (k Kind) String() string {
	switch k {
	case HFDir:
		return "hf-dir"
	case GGUF:
		return "gguf"
	case Llama2c:
		return "llama2c"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Resolved is a model reference resolved to a local path.
type Resolved struct {
	Ref  string // the reference as given
	Kind Kind
	Path string // absolute path of the directory or file
	// For hf: references: the repository ("ORG/NAME"), the revision asked
	// for ("main" when none) and the commit its snapshot is.
	Repo, Revision, Commit string
}

// HubPrefix starts a reference to a Hugging Face hub repository.
const HubPrefix = "hf:"

// Resolve resolves ref. A reference that starts with "hf:" is a hub
// repository; anything else is a local path: a directory holding
// config.json, a .gguf file or a .bin llama2.c checkpoint.
func Resolve(ref string) (Resolved, error) {
	if rest, ok := strings.CutPrefix(ref, HubPrefix); ok {
		return resolveHub(ref, rest)
	}
	return resolvePath(ref)
}

func resolvePath(ref string) (Resolved, error) {
	if ref == "" {
		return Resolved{}, errors.New("modelref: empty model reference")
	}
	abs, err := filepath.Abs(ref)
	if err != nil {
		return Resolved{}, fmt.Errorf("modelref: %q: %w", ref, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Resolved{}, fmt.Errorf("modelref: %q: %w", ref, err)
	}
	r := Resolved{Ref: ref, Path: abs}
	switch ext := strings.ToLower(filepath.Ext(abs)); {
	case st.IsDir():
		if _, err := os.Stat(filepath.Join(abs, "config.json")); err != nil {
			if slicegpt.IsSaved(abs) {
				return Resolved{}, fmt.Errorf("modelref: %q: directory %s holds a SliceGPT-sliced model (%s, lrmc's own layout), "+
					"whose blocks carry shortcut matrices: no checkpoint lrmc loads as a model (lrmc inspect describes it)",
					ref, abs, slicegpt.ConfigFile)
			}
			return Resolved{}, fmt.Errorf("modelref: %q: directory %s has no config.json, so it is no Hugging Face checkpoint", ref, abs)
		}
		r.Kind = HFDir
	case ext == ".gguf":
		r.Kind = GGUF
	case ext == ".bin":
		r.Kind = Llama2c
	default:
		return Resolved{}, fmt.Errorf("modelref: %q: file %s is neither .gguf nor a llama2.c .bin checkpoint", ref, abs)
	}
	return r, nil
}

var (
	// repoPart is one of ORG and NAME: the hub's repository-name alphabet.
	repoPart = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

func resolveHub(ref, rest string) (Resolved, error) {
	snap, err := FindSnapshot("models", ref, rest)
	if err != nil {
		return Resolved{}, fmt.Errorf("modelref: %w", err)
	}
	if _, err := os.Stat(filepath.Join(snap.Path, "config.json")); err != nil {
		return Resolved{}, fmt.Errorf("modelref: %q: snapshot %s has no config.json (an incomplete download?)", ref, snap.Path)
	}
	return Resolved{Ref: ref, Kind: HFDir, Path: snap.Path, Repo: snap.Repo, Revision: snap.Revision, Commit: snap.Commit}, nil
}

// Snapshot is one revision of a hub repository in the local cache.
type Snapshot struct {
	// Repo is "ORG/NAME", Revision the revision asked for ("main" when
	// none) and Commit the commit its snapshot is.
	Repo, Revision, Commit string
	// Path is the snapshot's directory, as the cache directory is named.
	Path string
}

// FindSnapshot resolves spec, "ORG/NAME[@REVISION]", a repository of
// repoType ("models" or "datasets") that ref names, to its snapshot in
// the local hub cache (HubCache): REVISION is a branch or tag under the
// repository's refs/ or a commit hash. Errors start with ref quoted and
// say what was looked for and where.
func FindSnapshot(repoType, ref, spec string) (Snapshot, error) {
	prefix := strings.TrimSuffix(ref, spec)
	repo, rev, hasRev := strings.Cut(spec, "@")
	org, name, ok := strings.Cut(repo, "/")
	if !ok || !repoPart.MatchString(org) || !repoPart.MatchString(name) || strings.Contains(repo, "..") {
		return Snapshot{}, fmt.Errorf("%q: want %sORG/NAME or %sORG/NAME@REVISION", ref, prefix, prefix)
	}
	if !hasRev {
		rev = "main"
	}
	// A revision names a file under refs/ ("main", "v1.0", "refs/pr/3"):
	// it must not climb out of it.
	if rev == "" || filepath.IsAbs(rev) || strings.Contains(rev, "\\") || hasDotElement(rev) {
		return Snapshot{}, fmt.Errorf("%q: revision %q is not a branch, tag or commit", ref, rev)
	}
	cache, from := HubCache()
	repoDir := filepath.Join(cache, repoType+"--"+org+"--"+name)
	s := Snapshot{Repo: repo, Revision: rev}
	notFound := func(format string, args ...any) error {
		return fmt.Errorf("%q: not in the local hub cache %s (from %s): %s",
			ref, cache, from, fmt.Sprintf(format, args...))
	}
	if st, err := os.Stat(repoDir); err != nil || !st.IsDir() {
		return Snapshot{}, notFound("no %s", repoDir)
	}
	refFile := filepath.Join(repoDir, "refs", filepath.FromSlash(rev))
	switch b, err := os.ReadFile(refFile); {
	case err == nil:
		s.Commit = strings.TrimSpace(string(b))
		if !commitRe.MatchString(s.Commit) {
			return Snapshot{}, fmt.Errorf("%q: %s holds %q, not a commit hash", ref, refFile, s.Commit)
		}
	case commitRe.MatchString(rev):
		// A commit asked for by hash has no refs/ entry.
		s.Commit = rev
	default:
		return Snapshot{}, notFound("no %s", refFile)
	}
	s.Path = filepath.Join(repoDir, "snapshots", s.Commit)
	if st, err := os.Stat(s.Path); err != nil || !st.IsDir() {
		return Snapshot{}, notFound("revision %s is commit %s, but there is no %s", rev, s.Commit, s.Path)
	}
	return s, nil
}

// hasDotElement reports whether a slash-separated path has a "..", "."
// or empty element.
func hasDotElement(p string) bool {
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "." || e == "" {
			return true
		}
	}
	return false
}

// HubCache returns the hub cache directory as huggingface_hub chooses it,
// and where the choice came from: $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.
func HubCache() (dir, from string) {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d, "HF_HUB_CACHE"
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub"), "HF_HOME"
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "huggingface", "hub"), "XDG_CACHE_HOME"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "~"
	}
	return filepath.Join(home, ".cache", "huggingface", "hub"), "the default"
}
