package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/kernels/gemm"
)

func TestBenchGEMMJSON(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "gemm", "--m", "3", "--n", "8", "--k", "16", "--threads", "1,2", "--reps", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	impls := append(gemm.Impls(), "gonum", "naive")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2*len(impls) {
		t.Fatalf("%d lines, want %d (%v at 2 thread counts):\n%s", len(lines), 2*len(impls), impls, out)
	}
	var seen []string
	for _, line := range lines {
		var r struct {
			Impl             string
			M, N, K, Threads int
			Reps             int
			GFLOPS           *float64 `json:"gflops"`
			Seconds          *float64 `json:"seconds"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r.M != 3 || r.N != 8 || r.K != 16 || r.Reps != 1 || r.GFLOPS == nil || !(*r.GFLOPS > 0) || r.Seconds == nil {
			t.Errorf("line %s", line)
		}
		seen = append(seen, r.Impl)
	}
	for _, want := range impls {
		if n := slices.Index(seen, want); n < 0 {
			t.Errorf("no result for %s in %v", want, seen)
		}
	}
}

func TestBenchGEMMSkippedNaiveIsSaid(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "gemm", "--m", "2", "--n", "4", "--k", "8", "--threads", "1", "--reps", "1",
		"--impl", "gonum,naive", "--naive-max-gflop", "1e-9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "naive") || !strings.Contains(out, "skipped: 1.3e-07 GFLOP is above the naive budget of 1e-09") {
		t.Errorf("output does not say naive was skipped:\n%s", out)
	}
}

func TestBenchModelJSON(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "model", "--shape", "stories260k", "--threads", "1", "--prefill", "8", "--decode", "4", "--dtype", "float32,bfloat16", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want prefill and decode in float32 and bfloat16:\n%s", len(lines), out)
	}
	for i, phase := range []string{"prefill", "decode", "prefill", "decode"} {
		var r struct {
			Shape, Phase, Dtype string
			Tokens, Threads     int
			TokensPerS          float64 `json:"tokens_per_s"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		dtype := []string{"float32", "bfloat16"}[i/2]
		if r.Shape != "stories260k" || r.Phase != phase || r.Dtype != dtype || r.Threads != 1 || !(r.TokensPerS > 0) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	if !strings.Contains(errs, "bench: stories260k t=1 rep 1/1: decode of 4 tokens") {
		t.Errorf("stderr lacks the progress:\n%s", errs)
	}
}

func TestBenchSmoke(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "smoke")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"16×64×48", "1×64×48", "gonum", "naive", "stories260k", "prefill", "decode", "capture stories260k"} {
		if !strings.Contains(out, want) {
			t.Errorf("smoke output lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "gemm", "--m", "4"}, "lrmc: bench gemm: --m, --n and --k go together and must be positive (got m=4 n=0 k=0)\n"},
		{[]string{"bench", "model", "--shape", "gpt2"}, "lrmc: bench: unknown model shape \"gpt2\" (have stories260k, smollm-135m, qwen3-0.6b)\n"},
		{[]string{"bench", "model", "--shape", "stories260k", "--threads", "0"}, "lrmc: bench: --threads 0 must be at least 1\n"},
		{[]string{"bench", "gemm", "--m", "1", "--n", "1", "--k", "1", "--impl", "cuda"}, "lrmc: bench: GEMM kernel \"cuda\" is not available here"},
	} {
		code, _, errs := lrmc(t, c.args...)
		if code != 1 || !strings.HasPrefix(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want prefix %q", c.args, code, errs, c.want)
		}
	}
}

func TestBenchExportGGUF(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := lrmc(t, "bench", "model", "--shape", "stories260k", "--export-gguf", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	path := filepath.Join(dir, "stories260k.gguf")
	if want := path + "\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	code, out, errs = lrmc(t, "inspect", path)
	if code != 0 || !strings.Contains(out, "llama") {
		t.Errorf("inspect: exit %d: %s %s", code, out, errs)
	}
}
