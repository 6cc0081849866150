package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// hfScheme prefixes a model path that names a Hugging Face repository.
const hfScheme = "hf:"

// hubCache returns the Hugging Face hub cache directory and where it came
// from, with huggingface_hub's precedence: HF_HUB_CACHE, else
// $HF_HOME/hub, else ~/.cache/huggingface/hub.
func hubCache() (dir, source string, err error) {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		dir, source = d, "HF_HUB_CACHE"
	} else if d := os.Getenv("HF_HOME"); d != "" {
		dir, source = filepath.Join(d, "hub"), "HF_HOME"
	} else {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", fmt.Errorf("no HF_HUB_CACHE or HF_HOME, and %w", err)
		}
		dir, source = filepath.Join(home, ".cache", "huggingface", "hub"), "the default"
	}
	// A relative cache is relative to where lrmc runs, as for huggingface_hub.
	dir, err = filepath.Abs(dir)
	return dir, source, err
}

// resolveHF turns "hf:ORG/NAME[@REVISION]" into the snapshot directory of
// the local hub cache, offline: a 40-hex revision names the snapshot
// directly, any other (default "main") is looked up in the repository's
// refs, as huggingface_hub writes them. lrmc never downloads, so a model
// not in the cache is an error that names the paths tried.
func resolveHF(ref string) (string, error) {
	repo, rev, _ := strings.Cut(strings.TrimPrefix(ref, hfScheme), "@")
	org, name, ok := strings.Cut(repo, "/")
	if !ok || org == "" || name == "" || strings.Contains(name, "/") || strings.HasPrefix(org, ".") || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("%q is not hf:ORG/NAME[@REVISION]", ref)
	}
	switch {
	case rev == "" && strings.Contains(ref, "@"):
		return "", fmt.Errorf("%q has an empty revision after @", ref)
	case rev == "":
		rev = "main"
	case !fs.ValidPath(rev):
		// Branch names may hold "/", but must stay inside refs/.
		return "", fmt.Errorf("%q: revision %q is not a branch, tag or commit name", ref, rev)
	}
	cache, source, err := hubCache()
	if err != nil {
		return "", fmt.Errorf("%s: cannot locate the Hugging Face hub cache: %w", ref, err)
	}
	repoDir := filepath.Join(cache, "models--"+org+"--"+name)
	notCached := func(path string, err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%s is not in the Hugging Face hub cache (%s, from %s): %s: %v; lrmc does not download models",
			ref, cache, source, path, err)
	}
	commit := rev
	if !isCommitHash(rev) {
		refFile := filepath.Join(repoDir, "refs", filepath.FromSlash(rev))
		b, err := os.ReadFile(refFile)
		if err != nil {
			return "", notCached(refFile, err)
		}
		commit = strings.TrimSpace(string(b))
		if !isCommitHash(commit) {
			return "", fmt.Errorf("%s: %s holds %q, not a commit hash", ref, refFile, commit)
		}
	}
	snap := filepath.Join(repoDir, "snapshots", commit)
	st, err := os.Stat(snap)
	if err == nil && !st.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return "", notCached(snap, err)
	}
	return snap, nil
}

// isCommitHash reports whether s is a full git commit hash (40 lowercase
// hex digits), as the hub cache names snapshots.
func isCommitHash(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
