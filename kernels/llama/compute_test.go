package llama

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
)

// TestComputeBF16: with bf16 compute the logits are the same bits for 1 and
// 2 threads (prefill runs the VDPBF16PS tile path, decode its dot path);
// they differ from float32 compute, but only by bf16 rounding of the
// activations; f32 compute ("" or "f32") is the model itself, unchanged.
func TestComputeBF16(t *testing.T) {
	for name, c := range halfConfigs() {
		t.Run(name, func(t *testing.T) {
			h, err := randModel(c, 31).WithDType(BFloat16)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []Compute{"", ComputeF32} {
				if same, err := h.WithCompute(f); err != nil || same != h {
					t.Fatalf("WithCompute(%q) = %p, %v; want the model itself", f, same, err)
				}
			}
			bc, err := h.WithCompute(ComputeBF16)
			if err != nil {
				t.Fatal(err)
			}
			if h.Half.Compute != "" || bc.Half.Compute != ComputeBF16 {
				t.Fatalf("compute: source %q, copy %q", h.Half.Compute, bc.Half.Compute)
			}
			// 256 rows: large enough that gemm splits the products over
			// two threads.
			const b, T = 16, 16
			tokens := randTokens(b*T, c.Vocab, 32)
			want := h.Forward(tokens, b, T)
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
			var first []float32
			var firstDec []float32
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				got := bc.Forward(tokens, b, T)
				d := NewDecoder(bc, T)
				var dec []float32
				for p, tok := range tokens[:T] {
					dec = append(dec, d.Step(tok, p)...)
				}
				if first == nil {
					first, firstDec = got, dec
					continue
				}
				bitsEqual(t, "bf16 Forward, 2 vs 1 threads", got, first)
				bitsEqual(t, "bf16 Decoder, 2 vs 1 threads", dec, firstDec)
			}
			bitsEqual(t, "f32 compute after bf16", h.Forward(tokens, b, T), want)
			var maxAbs, maxDiff float64
			differ := 0
			for i := range want {
				maxAbs = max(maxAbs, math.Abs(float64(want[i])))
				maxDiff = max(maxDiff, math.Abs(float64(first[i]-want[i])))
				if first[i] != want[i] {
					differ++
				}
			}
			// Rounding every activation to 8 significant bits moves logits
			// by a few parts in a thousand of their scale over 3 layers.
			if differ == 0 || !(maxDiff <= 0.05*maxAbs) {
				t.Fatalf("bf16 vs f32 compute: %d of %d logits differ, max |Δ| %g (max |logit| %g)",
					differ, len(want), maxDiff, maxAbs)
			}
		})
	}
}

func TestWithComputeErrors(t *testing.T) {
	m := randModel(testConfig, 33)
	f16, err := m.WithDType(Float16)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m    *Model
		c    Compute
		want string
	}{
		{m, ComputeBF16, `compute "bf16" needs bfloat16 weights, the model's are float32`},
		{f16, ComputeBF16, `the model's are float16`},
		{m, "fp8", `compute "fp8" is not one of f32, bf16`},
	} {
		if _, err := c.m.WithCompute(c.c); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WithCompute(%q) on %s: error %v, want %q", c.c, c.m.DType(), err, c.want)
		}
	}
}

// BenchmarkComputePrefill is Forward over 256 tokens of the SmolLM-135M
// shape with bfloat16 weights, float32 against bf16 compute, alternating:
//
//	go test -run=NONE -bench=ComputePrefill -count=5 ./kernels/llama
func BenchmarkComputePrefill(b *testing.B) {
	const T = 256
	tokens := randTokens(T, smolModel.Vocab, 2)
	for _, threads := range []int{1, 2} {
		for _, c := range []Compute{ComputeF32, ComputeBF16} {
			b.Run(fmt.Sprintf("%s/threads=%d", c, threads), func(b *testing.B) {
				m, err := smolModels()[BFloat16].WithCompute(c)
				if err != nil {
					b.Fatal(err)
				}
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				for b.Loop() {
					m.Forward(tokens, 1, T)
				}
				b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}
