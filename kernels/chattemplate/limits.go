package chattemplate

import "fmt"

// Limits bound what one render may cost. A chat template comes with a
// model (tokenizer_config.json), so it is untrusted input: without them a
// nested loop over range(100000) runs for hours, a recursive macro grows
// the stack until the runtime aborts, and string operations can build
// gigabytes. Each default is far above what real templates use: across
// the golden cases (the real templates of ../shared/data and Jinja2's own
// renderings of random constructs) the most a render takes is 18 loop
// iterations, 3 nested macro calls and 2 KiB of output; a chat of 20,000
// messages with 10 tool calls each takes 220,000 iterations. At the
// iteration cap a render that only loops stops after about a second.
type Limits struct {
	// Iterations caps the for-loop iterations of one render, all loops
	// together (items a loop filter looks at count too).
	Iterations int
	// Depth caps nested macro (and caller()) calls.
	Depth int
	// Output caps the bytes of any string the render builds: the output
	// itself, a macro's or a block's output, or an expression's value. It
	// is at most 64 MiB.
	Output int
}

// DefaultLimits are the limits a zero Options.Limits field stands for.
var DefaultLimits = Limits{Iterations: 1 << 20, Depth: 500, Output: maxStringBytes}

// maxStringBytes bounds strings the filters and methods build in one step
// from a size they are given (center's width, replace's growth, tojson's
// indentation), checked before building them.
const maxStringBytes = 64 << 20

// withDefaults fills the zero fields of l from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.Iterations <= 0 {
		l.Iterations = DefaultLimits.Iterations
	}
	if l.Depth <= 0 {
		l.Depth = DefaultLimits.Depth
	}
	// Above maxStringBytes a repr stops short (see reprWriter); a cap no
	// larger keeps such a string from passing the size checks.
	if l.Output <= 0 || l.Output > maxStringBytes {
		l.Output = DefaultLimits.Output
	}
	return l
}

// sizeText names a byte count for the output-limit error.
func sizeText(n int) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// tooLarge is the error of a string over maxStringBytes.
func tooLarge(what string, n int64) error {
	return fmt.Errorf("%s would be %d bytes, more than the limit of %s", what, n, sizeText(maxStringBytes))
}
