// Package answer extracts final answers from generated text and compares
// them with gold answers, with the semantics of the reference evaluators so
// that lrmc's numbers can be set beside published ones:
//
//   - GSM8K as lm-evaluation-harness scores it: the "strict-match" filter
//     (the number after "#### "), the "flexible-extract" filter (the last
//     number-like span of the text) and exact_match with the task's
//     regexes_to_ignore; the gold answer is the dataset's text after "####".
//   - MATH as Hendrycks et al. score it: the last \boxed{...} (or \fbox{...})
//     of a solution, balanced braces, and is_equiv, the comparison of the two
//     answers after strip_string, ported rule for rule; Equivalent adds an
//     exact rational comparison on top (see its comment).
//   - lm-eval's generic regex filter and exact_match metric (ignore_case,
//     ignore_punctuation, ignore_numbers, regexes_to_ignore).
//
// The package is pure text processing: it knows nothing of models, recipes
// or the DAG, and every function runs in time linear (or, for big-number
// comparison, near linear) in its input, whatever braces the input holds.
package answer
