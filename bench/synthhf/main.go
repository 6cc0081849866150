// Command synthhf writes a synthetic model (kernels/synth: seeded random
// weights in a real architecture's exact Hugging Face layout) as a sharded
// safetensors checkpoint, streaming it a shard at a time, for benchmarks
// that need a large model on disk (bench/llama8b-depth.sh). Never commit
// its output.
//
//	go run ./bench/synthhf --shape llama3.1-8b --out /work/tmp-8b/model --tokenizer ../shared/data/tokenizers/llama3
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"lrmc/executor/ops"
	"lrmc/kernels/hf"
	"lrmc/kernels/synth"
)

// shapes are named model shapes. llama3.1-8b is Meta-Llama-3.1-8B's
// (config.json of the release), without its llama3 rope scaling, which
// changes values, not sizes.
var shapes = map[string]synth.Spec{
	"llama3.1-8b": {Arch: "llama", Layers: 32, Dim: 4096, Heads: 32, KVHeads: 8, FFN: 14336, Vocab: 128256, SeqLen: 131072},
}

func main() {
	shape := flag.String("shape", "llama3.1-8b", "named shape; the flags below override its fields")
	out := flag.String("out", "", "checkpoint directory to write (required)")
	dtype := flag.String("dtype", "bfloat16", "float32, bfloat16 or float16")
	shard := flag.Int64("shard-bytes", 2<<30, "maximum tensor bytes per shard (also the writer's memory)")
	tok := flag.String("tokenizer", "", "directory whose tokenizer files are copied beside the weights")
	layers := flag.Int("layers", 0, "override the number of blocks")
	seed := flag.Uint64("seed", 1, "weight seed")
	flag.Parse()
	if err := run(*shape, *out, *dtype, *tok, *shard, *layers, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "synthhf:", err)
		os.Exit(1)
	}
}

func run(shape, out, dtype, tok string, shard int64, layers int, seed uint64) error {
	s, ok := shapes[shape]
	if !ok {
		return fmt.Errorf("unknown shape %q (known: llama3.1-8b)", shape)
	}
	if out == "" {
		return fmt.Errorf("--out is required")
	}
	if layers > 0 {
		s.Layers = layers
	}
	s.Seed = seed
	t0 := time.Now()
	if err := synth.WriteHF(out, s, dtype, shard); err != nil {
		return err
	}
	if tok != "" {
		for _, name := range hf.CompanionFiles {
			src := filepath.Join(tok, name)
			if _, err := os.Stat(src); err != nil {
				continue // the tokenizer directory need not have every companion
			}
			if err := ops.CopyFile(src, filepath.Join(out, name)); err != nil {
				return err
			}
		}
	}
	fmt.Printf("wrote %s (%s, %d blocks, %s) in %.0f s\n", out, shape, s.Layers, dtype, time.Since(t0).Seconds())
	return nil
}
