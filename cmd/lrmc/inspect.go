package main

import (
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"lrmc/executor/ops"
	"lrmc/kernels/gguf"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/modelref"
	"lrmc/kernels/safetensors"
	"lrmc/kernels/slicegpt"
)

// inspectSliced describes a SliceGPT export from its config and its
// tensor index: the dense shape it was sliced from, the widths, the
// parameters the tensors hold.
func inspectSliced(w io.Writer, dir string, all bool) error {
	m, err := slicegpt.ReadConfig(dir)
	if err != nil {
		return err
	}
	f, err := safetensors.Open(filepath.Join(dir, slicegpt.WeightsFile))
	if err != nil {
		return err
	}
	defer f.Close()
	var tensors []tensorInfo
	var params int64
	for _, t := range f.Tensors() {
		tensors = append(tensors, tensorInfo{t.Name, strings.ToLower(string(t.DType)), t.Shape})
		params += int64(t.NumElements())
	}
	c := m.Config
	fmt.Fprintf(w, "%s\n  format        slicegpt (lrmc's own layout; transformers and llama.cpp cannot load it)\n", dir)
	fmt.Fprintf(w, "  architecture  SliceGPT-sliced llama: shortcut matrices on the residual stream\n")
	fmt.Fprintf(w, "  blocks        %d\n  hidden        %d sliced to %d (ratio %g)\n", c.Layers, c.Dim, m.Width, m.Sparsity)
	var widths []string
	for _, l := range m.Layers {
		widths = append(widths, fmt.Sprintf("%d→%d→%d", l.In, l.Mid, l.Out))
	}
	fmt.Fprintf(w, "  block widths  %s\n", strings.Join(widths, ", "))
	fmt.Fprintf(w, "  heads         %d (kv %d, head dim %d)\n  intermediate  %d\n  vocab         %d\n  context       %d\n",
		c.Heads, c.KVHeads, c.HeadDim(), c.HiddenDim, c.Vocab, c.SeqLen)
	fmt.Fprintf(w, "  parameters    %s (dense %s)\n", commas(params), commas(c.Params()))
	printTensors(w, tensors, all)
	return nil
}

func inspectCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "inspect PATH",
		Short: "Print a model's architecture, shapes, dtypes and parameter count",
		Long: `Inspect reads a model's header or config and its tensor index (never the
weights) and prints its architecture, shape, parameter count and tensors:
the first block's and those outside the blocks (--all: every tensor); a
GGUF file's metadata key-values (long values shortened); a Hugging Face
directory's tokenizer. PATH is a Hugging Face directory or hf:ORG/NAME[@REV]
(a snapshot in the local hub cache), a .gguf file, a llama2.c .bin file, a
SliceGPT export (a run's slicegpt/ directory), or a tokenizer:
tokenizer.json (or a directory holding only tokenizer files) or a llama2.c
tokenizer.bin / tok<N>.bin, whose vocabulary size, special tokens and chat
template it prints.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if strings.HasPrefix(path, modelref.HubPrefix) {
				res, err := modelref.Resolve(path)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: revision %s, commit %s\n", path, res.Revision, res.Commit)
				path = res.Path
			}
			if isTokenizerPath(path) {
				return inspectTokenizer(cmd.OutOrStdout(), path)
			}
			if slicegpt.IsSaved(path) {
				return inspectSliced(cmd.OutOrStdout(), path, all)
			}
			format, err := ops.DetectFormat(path, "auto")
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			var tensors []tensorInfo
			var cfg llama.Config
			var kvs []gguf.KV
			arch := ""
			switch format {
			case "llama2c":
				if cfg, err = llama2c.ReadConfig(path); err != nil {
					return err
				}
				arch = "llama (llama2.c checkpoint, float32)"
			case "hf":
				hc, err := hf.ReadConfig(path)
				if err != nil {
					return err
				}
				if cfg, err = hc.LlamaConfig(); err != nil {
					return err
				}
				arch = hc.Architecture
				r, err := safetensors.OpenDir(path)
				if err != nil {
					return err
				}
				defer r.Close()
				for _, n := range r.Names() {
					t, _ := r.Tensor(n)
					tensors = append(tensors, tensorInfo{n, strings.ToLower(string(t.DType)), t.Shape})
				}
			case "gguf":
				c, meta, err := ggufmodel.ReadConfig(path)
				if err != nil {
					return err
				}
				cfg, arch = c, meta.Architecture+" (GGUF)"
				f, err := gguf.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				for _, t := range f.Tensors {
					tensors = append(tensors, tensorInfo{t.Name, strings.ToLower(t.Type.String()), t.Shape()})
				}
				kvs = f.Metadata
			default:
				return fmt.Errorf("%s: cannot inspect %s models", path, format)
			}
			printModel(w, path, format, arch, cfg)
			printTensors(w, tensors, all)
			printMetadata(w, kvs)
			if format == "hf" && exists(filepath.Join(path, "tokenizer.json")) {
				t, err := openCLITokenizer(path, 0)
				if err != nil {
					return err
				}
				fmt.Fprintln(w, "  tokenizer")
				printTokenizer(w, t, "    ")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list every tensor")
	return cmd
}

type tensorInfo struct {
	name, dtype string
	shape       []int
}

func printModel(w io.Writer, path, format, arch string, c llama.Config) {
	fmt.Fprintf(w, "%s\n  format        %s\n  architecture  %s\n", path, format, arch)
	fmt.Fprintf(w, "  blocks        %d\n  hidden        %d\n  heads         %d (kv %d, head dim %d)\n  intermediate  %d\n  vocab         %d\n  context       %d\n",
		c.Layers, c.Dim, c.Heads, c.KVHeads, c.HeadDim(), c.HiddenDim, c.Vocab, c.SeqLen)
	if !c.Uniform() {
		// Width-pruned: heads and intermediate above are the widest block's.
		ws := make([]string, c.Layers)
		for i := range ws {
			l := c.Width(i)
			ws[i] = fmt.Sprintf("%d/%d/%d", l.Heads, l.KVHeads, l.HiddenDim)
		}
		fmt.Fprintf(w, "  block widths  %s (heads/kv/intermediate; the lines above are the widest)\n", strings.Join(ws, " "))
	}
	var extras []string
	if c.OutBias {
		extras = append(extras, "o/down bias")
	}
	if c.QKVBias {
		extras = append(extras, "q/k/v bias")
	}
	if c.QKNorm {
		extras = append(extras, "q/k norm")
	}
	if c.SharedClassifier {
		extras = append(extras, "tied embeddings")
	}
	rope := fmt.Sprintf("%s, theta %g", c.RopeStyle, c.RopeTheta)
	if c.RopeScaling.Type != "" {
		rope += fmt.Sprintf(", %s scaling ×%g", c.RopeScaling.Type, c.RopeScaling.Factor)
	}
	fmt.Fprintf(w, "  rope          %s\n  norm eps      %g\n", rope, c.NormEps)
	if len(extras) > 0 {
		fmt.Fprintf(w, "  features      %s\n", strings.Join(extras, ", "))
	}
	fmt.Fprintf(w, "  parameters    %s\n", commas(c.Params()))
}

// blockIndex finds the block number in HF ("layers.N.") and GGUF ("blk.N.") names.
var blockIndex = regexp.MustCompile(`(?:layers|blk)\.(\d+)\.`)

func printTensors(w io.Writer, ts []tensorInfo, all bool) {
	if len(ts) == 0 {
		return
	}
	dtypes := map[string]int{}
	for _, t := range ts {
		dtypes[t.dtype]++
	}
	var parts []string
	for d, n := range dtypes {
		parts = append(parts, fmt.Sprintf("%s %d", d, n))
	}
	sort.Strings(parts)
	fmt.Fprintf(w, "  tensors       %d (%s)\n", len(ts), strings.Join(parts, ", "))
	hidden := 0
	for _, t := range ts {
		if m := blockIndex.FindStringSubmatch(t.name); !all && m != nil && m[1] != "0" {
			hidden++
			continue
		}
		fmt.Fprintf(w, "    %-48s %-5s %v\n", t.name, t.dtype, t.shape)
	}
	if hidden > 0 {
		fmt.Fprintf(w, "    … %d more tensors in the other blocks (--all lists them)\n", hidden)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isTokenizerPath tells a tokenizer from a model: tokenizer.json or
// tokenizer_config.json, a llama2.c tokenizer.bin or tok<N>.bin, or a
// directory with a tokenizer and no config.json.
func isTokenizerPath(path string) bool {
	base := filepath.Base(path)
	if isDir(path) {
		return !exists(filepath.Join(path, "config.json")) &&
			(exists(filepath.Join(path, "tokenizer.json")) || exists(filepath.Join(path, "tokenizer.bin")))
	}
	return base == "tokenizer.json" || base == "tokenizer_config.json" || base == "tokenizer.bin" || llama2cTokName.MatchString(base)
}

var llama2cTokName = regexp.MustCompile(`^tok\d+\.bin$`)

func inspectTokenizer(w io.Writer, path string) error {
	if filepath.Base(path) == "tokenizer_config.json" {
		path = filepath.Dir(path)
	}
	t, err := openCLITokenizer(path, 0)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, t.path)
	printTokenizer(w, t, "  ")
	return nil
}

// printTokenizer prints a tokenizer's format, vocabulary size, BOS and EOS,
// special tokens and chat template.
func printTokenizer(w io.Writer, t *cliTokenizer, indent string) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%s%-13s %s\n", indent, k, fmt.Sprintf(format, a...)) }
	tok := func(id int32, ok bool) string {
		if !ok {
			return "none"
		}
		return fmt.Sprintf("%s (%d)", strconv.Quote(t.pieces([]int32{id})[0]), id)
	}
	switch t.format {
	case "llama2c":
		line("format", "llama2.c tokenizer.bin (SentencePiece pieces and scores)")
		line("vocab", "%s", commas(int64(t.l2c.Vocab())))
		line("bos", "%s", tok(t.l2c.BOS(), true))
		line("eos", "%s", tok(t.l2c.EOS(), true))
		line("chat template", "none (llama2.c has none)")
		return
	case "gguf":
		line("format", "GGUF tokenizer.* metadata")
	default:
		line("format", "Hugging Face tokenizer.json")
	}
	line("vocab", "%s", commas(int64(t.hf.Vocab())))
	line("bos", "%s", tok(t.hf.BOS()))
	line("eos", "%s", tok(t.hf.EOS()))
	sp := t.hf.Specials()
	names := t.pieces(sp)
	for i := range names {
		names[i] = strconv.Quote(names[i])
	}
	if len(names) > 8 {
		names = append(names[:8], "…")
	}
	line("special", "%d: %s", len(sp), strings.Join(names, " "))
	switch ct := t.chatTemplate; {
	case ct == "":
		line("chat template", "none")
	case strings.Contains(ct, "enable_thinking"):
		line("chat template", "%s bytes, reads enable_thinking", commas(int64(len(ct))))
	default:
		line("chat template", "%s bytes", commas(int64(len(ct))))
	}
}

// printMetadata prints GGUF key-values, long strings and arrays shortened.
func printMetadata(w io.Writer, kvs []gguf.KV) {
	if len(kvs) == 0 {
		return
	}
	fmt.Fprintf(w, "  metadata      %d key-values\n", len(kvs))
	width := 0
	for _, kv := range kvs {
		width = max(width, len(kv.Key))
	}
	for _, kv := range kvs {
		fmt.Fprintf(w, "    %-*s  %s\n", width, kv.Key, metaValue(kv.Value))
	}
}

// metaValue shows a GGUF value in one line: a string quoted (cut after 60
// characters, with its length), an array as its length, element type and
// first elements.
func metaValue(v any) string {
	quote := func(s string) string {
		if r := []rune(s); len(r) > 60 {
			return fmt.Sprintf("%s… (%s bytes)", strconv.Quote(string(r[:60])), commas(int64(len(s))))
		}
		return strconv.Quote(s)
	}
	if s, ok := v.(string); ok {
		return quote(s)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return fmt.Sprint(v)
	}
	n := rv.Len()
	var parts []string
	for i := range min(n, 4) {
		e := rv.Index(i).Interface()
		if s, ok := e.(string); ok {
			parts = append(parts, quote(s))
		} else {
			parts = append(parts, fmt.Sprint(e))
		}
	}
	if n > 4 {
		parts = append(parts, "…")
	}
	return fmt.Sprintf("[%s × %s] %s", commas(int64(n)), rv.Type().Elem(), strings.Join(parts, " "))
}
