package ops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/slicegpt"
	"lrmc/kernels/synth"
	"lrmc/kernels/tokenizer"
	"lrmc/planner"
)

// Digester hashes files; *cache.Store implements it with a memo keyed by
// the file's identity, so a multi-GB checkpoint is hashed once.
type Digester interface {
	FileDigest(path string) (digest.Digest, error)
}

// Env answers the planner's questions from the file system: content
// digests and model headers. It remembers the stamps of every file behind
// each source it read or digested, so that Check can tell, when an op is
// about to read a source and again once it has, that the file still holds
// the bytes its digest (and so every key built on it) names. One Env
// serves one plan and the execution of that plan.
type Env struct {
	Files Digester

	mu   sync.Mutex
	seen map[string][]sourceFile // by path as the planner names it
}

// sourceFile is one file behind a source: its name in the source directory
// ("" when the source is the file itself) and its stamp.
type sourceFile struct {
	name  string
	stamp digest.Stamp
}

// FileDigest implements planner.Env. A file is digested as its bytes; a
// directory (a Hugging Face checkpoint or tokenizer) as the sorted list of
// its non-hidden files' names and digests. Symbolic links are followed,
// and a file is digested as its target's bytes, since that is what a
// loader reads: in a hub cache every file of a snapshot is a link into
// blobs/. Subdirectories, and links to directories, are left out (no
// loader reads them); a broken link, a named pipe, a socket or a device is
// an error.
func (e *Env) FileDigest(path string) (digest.Digest, error) {
	files, dir, err := sourceFiles(path)
	if err != nil {
		return digest.Digest{}, err
	}
	var d digest.Digest
	if !dir {
		if d, err = e.file(path); err != nil {
			return digest.Digest{}, err
		}
	} else {
		h := digest.New()
		for _, f := range files {
			fd, err := e.file(filepath.Join(path, f.name))
			if err != nil {
				return digest.Digest{}, err
			}
			fmt.Fprintf(h, "%s\x00%s\n", f.name, fd)
		}
		d = h.Digest()
	}
	// The digest names the files listed before it was taken only if they
	// are still the same after.
	after, _, err := sourceFiles(path)
	if err != nil {
		return digest.Digest{}, err
	}
	if change := changed(path, files, after); change != "" {
		return digest.Digest{}, fmt.Errorf("%s changed while it was being digested: %s", path, change)
	}
	if err := e.remember(path, files); err != nil {
		return digest.Digest{}, err
	}
	return d, nil
}

// Check implements executor.Sources: it fails, naming the file and what
// happened to it, when a source the planner digested is no longer the file
// (or set of files) it digested.
func (e *Env) Check(path string) error {
	e.mu.Lock()
	was, ok := e.seen[path]
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s was not digested when the recipe was planned", path)
	}
	now, _, err := sourceFiles(path)
	if err != nil {
		return err
	}
	if change := changed(path, was, now); change != "" {
		return errors.New(change)
	}
	return nil
}

// inspect checks and remembers a source before planning reads its header,
// so that a named pipe is refused instead of blocking, and a file that
// changes between its header being read and its bytes being digested is
// an error instead of a key that mixes two versions.
func (e *Env) inspect(path string) error {
	files, _, err := sourceFiles(path)
	if err != nil {
		return err
	}
	return e.remember(path, files)
}

// remember records the files behind a source; seeing different ones for
// the same path during one plan means the source changed under it.
func (e *Env) remember(path string, files []sourceFile) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if was, ok := e.seen[path]; ok {
		if change := changed(path, was, files); change != "" {
			return fmt.Errorf("%s changed while the recipe was planned: %s", path, change)
		}
		return nil
	}
	if e.seen == nil {
		e.seen = map[string][]sourceFile{}
	}
	e.seen[path] = files
	return nil
}

// sourceFiles lists the files behind a source with their stamps: the
// regular file at path (dir false), or the files FileDigest digests in the
// directory at path (dir true), sorted by name.
func sourceFiles(path string) (files []sourceFile, dir bool, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, false, err
	}
	if !st.IsDir() {
		stamp, err := digest.StatFile(path)
		if err != nil {
			return nil, false, err
		}
		return []sourceFile{{stamp: stamp}}, false, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, true, err
	}
	for _, en := range entries {
		name := en.Name()
		if strings.HasPrefix(name, ".") || en.IsDir() {
			continue
		}
		full := filepath.Join(path, name)
		stamp, err := digest.StatFile(full)
		var nr *digest.NotRegularError
		switch {
		case errors.As(err, &nr) && nr.Mode.IsDir():
			continue // a link to a directory, left out like a directory
		case errors.Is(err, fs.ErrNotExist) && en.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(full)
			return nil, true, fmt.Errorf("%s is a broken symbolic link (to %s)", full, target)
		case err != nil:
			return nil, true, err
		}
		files = append(files, sourceFile{name: name, stamp: stamp})
	}
	return files, true, nil
}

// changed says how the files behind the source at path went from was to
// now, naming the first file that differs; "" when none does.
func changed(path string, was, now []sourceFile) string {
	i, j := 0, 0
	for i < len(was) || j < len(now) {
		switch {
		case j == len(now) || (i < len(was) && was[i].name < now[j].name):
			return fmt.Sprintf("%s was removed", filepath.Join(path, was[i].name))
		case i == len(was) || now[j].name < was[i].name:
			return fmt.Sprintf("%s was added", filepath.Join(path, now[j].name))
		}
		if c := was[i].stamp.Change(now[j].stamp); c != "" {
			return fmt.Sprintf("%s: %s", filepath.Join(path, was[i].name), c)
		}
		i++
		j++
	}
	return ""
}

func (e *Env) file(path string) (digest.Digest, error) {
	if e.Files == nil {
		return digest.File(path)
	}
	return e.Files.FileDigest(path)
}

// Model implements planner.Env: it detects the format, reads only the
// header or config, and finds the tokenizer.
func (e *Env) Model(m ir.Model) (planner.ModelInfo, error) {
	for _, p := range []string{m.Path, m.Tokenizer} {
		if p == "" {
			continue
		}
		if err := e.inspect(p); err != nil {
			return planner.ModelInfo{}, err
		}
	}
	if s := m.Synthetic; s != nil {
		return e.syntheticInfo(m)
	}
	format, err := DetectFormat(m.Path, m.Format)
	if err != nil {
		return planner.ModelInfo{}, err
	}
	info := planner.ModelInfo{Format: format}
	switch format {
	case "llama2c":
		cfg, err := llama2c.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = cfg.Layers, cfg.Dim, cfg.Vocab, cfg.SeqLen
		if m.Tokenizer == "" {
			if info.Tokenizer, err = llama2c.FindTokenizer(m.Path, cfg.Vocab); err != nil {
				return info, err
			}
			info.TokenizerFormat = "llama2c"
		}
	case "hf":
		cfg, err := hf.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		lc, err := cfg.LlamaConfig()
		if err != nil {
			return info, fmt.Errorf("%s: %w", m.Path, err)
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = lc.Layers, lc.Dim, lc.Vocab, lc.SeqLen
		if m.Tokenizer == "" {
			if _, err := os.Stat(filepath.Join(m.Path, "tokenizer.json")); err != nil {
				return info, fmt.Errorf("%s: no tokenizer.json in the checkpoint; name one with model.tokenizer", m.Path)
			}
			info.Tokenizer, info.TokenizerFormat = m.Path, "hf"
		}
	case "gguf":
		cfg, _, err := ggufmodel.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = cfg.Layers, cfg.Dim, cfg.Vocab, cfg.SeqLen
		if m.Tokenizer == "" {
			info.Tokenizer, info.TokenizerFormat = m.Path, "gguf"
		}
	default:
		return info, fmt.Errorf("%s: model format %q is not supported; supported: llama2c, hf, gguf", m.Path, format)
	}
	if m.Tokenizer != "" {
		info.Tokenizer = m.Tokenizer
		if info.TokenizerFormat, err = tokenizerFormat(m.Tokenizer); err != nil {
			return info, err
		}
	}
	return info, nil
}

// syntheticInfo sizes a synthetic model; its vocabulary defaults to the
// tokenizer's.
func (e *Env) syntheticInfo(m ir.Model) (planner.ModelInfo, error) {
	s := m.Synthetic
	info := planner.ModelInfo{Format: "synthetic", Tokenizer: m.Tokenizer, TokenizerFormat: "hf",
		Blocks: s.Layers, Dim: s.Dim, Vocab: s.Vocab, SeqLen: s.SeqLen}
	if info.Vocab == 0 {
		var err error
		if info.Vocab, err = e.tokenizerVocab(m.Tokenizer); err != nil {
			return info, err
		}
	}
	// Check the shape now, so a bad one is a plan error, not a run failure.
	_, err := synth.Config(synth.Spec{Arch: s.Arch, Layers: s.Layers, Dim: s.Dim, Heads: s.Heads, KVHeads: s.KVHeads,
		HeadDim: s.HeadDim, FFN: s.FFN, Vocab: info.Vocab, SeqLen: s.SeqLen, Tie: s.Tie})
	return info, err
}

// Memos keeps small values derived from file contents, keyed by the
// contents' digest; *cache.Store implements it.
type Memos interface {
	Derived(kind string, of digest.Digest) ([]byte, bool)
	SetDerived(kind string, of digest.Digest, v []byte) error
}

// vocabMemo names the memo of a tokenizer's vocabulary size.
const vocabMemo = "tokenizer.vocab/1"

// tokenizerVocab returns the vocabulary size of the tokenizer at path.
// Loading a large tokenizer.json (Qwen3's is 11 MB of JSON) takes about a
// third of a second, which a warm apply would pay only to learn this
// number; so it is memoized in the cache under the digest of the
// tokenizer's bytes (digested anyway, as a source of the plan).
func (e *Env) tokenizerVocab(path string) (int, error) {
	memos, ok := e.Files.(Memos)
	var sum digest.Digest
	if ok {
		var err error
		if sum, err = e.FileDigest(path); err != nil {
			return 0, err
		}
		if b, found := memos.Derived(vocabMemo, sum); found && len(b) == 8 {
			return int(binary.LittleEndian.Uint64(b)), nil
		}
	}
	t, err := tokenizer.Load(path)
	if err != nil {
		return 0, err
	}
	n := t.Vocab()
	// Record the number only if the files are still those digested: one
	// replaced while it loaded must not lend its vocabulary to the old
	// bytes' digest. A memo that cannot be written costs only a reload.
	if ok && e.Check(path) == nil {
		memos.SetDerived(vocabMemo, sum, binary.LittleEndian.AppendUint64(nil, uint64(n)))
	}
	return n, nil
}

// tokenizerFormat tells a named tokenizer's format from its path.
func tokenizerFormat(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	switch {
	case st.IsDir():
		return "hf", nil
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		return "gguf", nil
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		return "llama2c", nil
	}
	return "", fmt.Errorf("%s: cannot tell the tokenizer's format: want a Hugging Face directory, a .gguf or a llama2.c .bin", path)
}

// DetectFormat resolves "auto" from the path: a directory is a Hugging Face
// checkpoint, a .gguf file GGUF, a .bin file llama2.c.
func DetectFormat(path, format string) (string, error) {
	if format != "" && format != "auto" {
		return format, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		if slicegpt.IsSaved(path) {
			return "", fmt.Errorf("%s holds a SliceGPT-sliced model (%s, lrmc's own layout of width/slicegpt's output): "+
				"its blocks carry shortcut matrices, so it is no checkpoint to prune, evaluate or generate with; "+
				"lrmc inspect describes it", path, slicegpt.ConfigFile)
		}
		return "hf", nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		return "gguf", nil
	case ".bin":
		return "llama2c", nil
	}
	return "", fmt.Errorf("%s: cannot tell the model format from the name; set model.format", path)
}
