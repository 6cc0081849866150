package shortgpt_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/hf"
	"lrmc/kernels/synth"
	_ "lrmc/methods/all"
	"lrmc/planner"
)

// memChild names the checkpoint a child process of TestPeakMemoryFlat
// runs the recipe on.
const memChild = "LRMC_SHORTGPT_MEM_CHILD"

// TestPeakMemoryFlat runs ShortGPT's capture and decision, planned and
// executed as lrmc apply does (without a cache, see discard), on a bf16 checkpoint of 4 and of 16 blocks,
// each in a fresh process, and compares the processes' peak resident
// memory (VmHWM): the blocks are walked one at a time (weights mapped and
// evicted after use, hidden states freed after their last user), so the
// peak must not grow with the depth. Holding every block's weights or
// every hidden state would add ≥ 12 × 6.6 MiB (weights) or 12 × 1 MiB
// (states) at 16 blocks.
func TestPeakMemoryFlat(t *testing.T) {
	if dir := os.Getenv(memChild); dir != "" {
		runChild(t, dir)
		return
	}
	tok := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	peak := map[int]int{}
	for _, layers := range []int{4, 16} {
		dir := filepath.Join(t.TempDir(), "model")
		writeDeep(t, dir, layers)
		cmd := exec.Command(os.Args[0], "-test.run=^TestPeakMemoryFlat$", "-test.count=1")
		cmd.Env = append(os.Environ(), memChild+"="+dir, "LRMC_MEM_TOK="+tok, "LRMC_MEM_TEXT="+text)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%d blocks: child failed: %v\n%s", layers, err, out)
		}
		_, after, ok := strings.Cut(string(out), "peak-kB=")
		if !ok {
			t.Fatalf("%d blocks: the child reported no peak:\n%s", layers, out)
		}
		kb, err := strconv.Atoi(strings.Fields(after)[0])
		if err != nil {
			t.Fatal(err)
		}
		peak[layers] = kb
	}
	t.Logf("peak RSS: 4 blocks %d KiB, 16 blocks %d KiB", peak[4], peak[16])
	if d := peak[16] - peak[4]; d > 24<<10 {
		t.Errorf("peak RSS grows with depth: 4 blocks %d KiB, 16 blocks %d KiB (+%d KiB, want ≤ 24 MiB)", peak[4], peak[16], d)
	}
}

// writeDeep writes a bf16 Llama checkpoint of the given depth whose blocks
// all hold one block's random weights (drawing each block would make the
// test slow; the file still has every block's own bytes).
func writeDeep(t *testing.T, dir string, layers int) {
	t.Helper()
	m, cfg, err := synth.New(synth.Spec{Arch: "llama", Layers: 1, Dim: 256, Heads: 4, KVHeads: 2, FFN: 4096, Vocab: 512, SeqLen: 256, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for len(m.Layers) < layers {
		m.Layers = append(m.Layers, m.Layers[0])
	}
	m.Config.Layers = layers
	if cfg, err = hf.NewConfig(hf.ArchLlama, m.Config); err != nil {
		t.Fatal(err)
	}
	if err := hf.Save(dir, m, cfg, "bfloat16", 0); err != nil {
		t.Fatal(err)
	}
}

// runChild plans and runs a ShortGPT recipe on the checkpoint in dir and
// prints the process's peak resident memory.
func runChild(t *testing.T, dir string) {
	model := ir.Model{Path: dir, Format: "hf", DType: "bfloat16", Tokenizer: os.Getenv("LRMC_MEM_TOK")}
	r := &ir.Recipe{File: "memory.cue", Output: ir.Output{Dir: t.TempDir()}, Runs: []ir.Run{{
		Name: "shortgpt-1", Model: model,
		Calibration: ir.Calibration{Data: ir.Data{Path: os.Getenv("LRMC_MEM_TEXT"), Format: "text", Split: ir.Split{From: 0, To: 0.9}},
			Samples: 8, SeqLen: 128, Seed: 1},
		Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: 1},
	}}}
	env := &ops.Env{}
	g, err := planner.Plan(r, env)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := executor.New(ops.Registry(), discard{}, executor.Options{Sources: env})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("peak-kB=%d\n", vmHWM(t))
}

// discard is a cache that keeps nothing: the test measures what running
// the DAG holds, not the store's own footprint (Badger maps its value log,
// so the pages of values it wrote stay resident until the kernel reclaims
// them; bench/llama8b-depth.sh measures a real apply with its cache).
type discard struct{}

func (discard) Get(digest.Digest) ([]byte, cache.Meta, error) {
	return nil, cache.Meta{}, cache.ErrNotFound
}
func (discard) Put(digest.Digest, string, string, []byte) error { return nil }
func (discard) Stat(digest.Digest) (cache.Meta, bool, error)    { return cache.Meta{}, false, nil }
func (discard) Delete(digest.Digest) error                      { return nil }

// vmHWM is the process's peak resident set in KiB.
func vmHWM(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("VmHWM not in /proc/self/status")
	return 0
}
