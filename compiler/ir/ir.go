// Package ir is the typed form of a recipe: what the compiler produces from
// CUE and what the planner consumes. It has no dependency on CUE, so the
// planner stays a pure function of these values.
//
// Every run is fully resolved: top-level defaults are merged into it and the
// schema's defaults are filled in, so two runs that share a field carry equal
// values and the planner can merge their nodes by content key.
package ir

import (
	"fmt"
	"strings"
)

// Recipe is one compiled recipe file.
type Recipe struct {
	// File is the recipe's path as given; Dir is the directory that relative
	// paths inside the recipe are resolved against (absolute).
	File string
	Dir  string

	// Dense asks for the unpruned model to be evaluated as a baseline row.
	Dense bool
	// DenseModel, DenseEval are the top-level model and evaluation used for the
	// dense baseline row.
	DenseModel Model
	DenseEval  []Eval

	// Runs are sorted by name.
	Runs []Run

	Output Output

	// Speed, when set, measures every model's prefill and decode speed.
	Speed *Speed

	// Cluster is what apply --executor slurm asks Slurm for; no node's
	// key depends on it.
	Cluster Cluster

	// Positions maps a field path (see FieldPath) to where its value was
	// written, for runs' resolved fields: a value inherited from the top level
	// points at the top-level field.
	Positions map[string]Pos
}

// Run is one pipeline of a sweep: model → calibration → prune → recover →
// evaluate → export.
type Run struct {
	Name        string
	Model       Model
	Calibration Calibration
	Prune       Prune
	Recovery    Recovery
	Eval        []Eval
}

// Recovery is the training that follows pruning to win back quality.
type Recovery struct {
	// Method is "none" (the default), "lora" or "full" (every weight).
	Method string
	// Data is the training distribution, read like calibration data
	// (format, template, thinking, split). For chat and instruction data
	// the loss covers the assistant's tokens only, as SFT does.
	Data Data
	// Steps optimizer steps of Batch sequences of SeqLen tokens, each
	// step accumulating Accumulation micro-batches.
	Steps, Batch, SeqLen, Accumulation int
	LR                                 float64
	Warmup                             float64 // warmup as a fraction of Steps
	Schedule                           string  // "cosine" or "constant"
	WeightDecay                        float64
	MaxGradNorm                        float64 // 0: no clipping
	// LoRA: rank, alpha, dropout and the projections adapted, from
	// "q", "k", "v", "o", "gate", "up", "down".
	Rank    int
	Alpha   float64
	Dropout float64
	Targets []string
	// Loss is "lm" (next-token cross-entropy) or "kd" (distillation from
	// the dense model: KL at Temperature, optionally on the teacher's TopK
	// logits only; 0 keeps them all).
	Loss        string
	Temperature float64
	TopK        int
	Seed        int64
	// CheckpointEvery saves training state to the cache every so many
	// steps, so an interrupted recovery resumes there; 0 picks a default.
	CheckpointEvery int
}

// Model names a checkpoint. Path is absolute after compilation (an
// "hf:ORG/NAME[@REV]" reference is resolved to its snapshot directory).
type Model struct {
	Path string
	// Tokenizer is an absolute path (a llama2.c tokenizer file, or a
	// directory with tokenizer.json and tokenizer_config.json), or empty to
	// use the model's own (beside it, inside the HF directory or the GGUF).
	Tokenizer string
	// Format is "auto" (detected from the path), "llama2c", "hf" or "gguf".
	Format string
	// DType is how the weights are held in memory while lrmc runs the
	// model: "float32" (the default), "bfloat16" or "float16" (half the
	// memory and decode bandwidth; activations stay float32).
	DType string
	// Compute is the arithmetic of the matrix products: "" for float32
	// (the default, also when the recipe says "f32") or "bf16" (needs DType
	// "bfloat16"; activations rounded to bfloat16, VDPBF16PS).
	Compute string
	// Synthetic, when set instead of Path, makes a model with seeded random
	// weights in a real architecture's layout (for tests, benchmarks and
	// examples that need a model of a given shape). Tokenizer is then required.
	Synthetic *Synthetic
}

// Synthetic describes a random-weight model.
type Synthetic struct {
	Arch    string // "llama", "qwen2", "qwen3", "mistral"
	Layers  int
	Dim     int
	Heads   int
	KVHeads int
	HeadDim int // 0: Dim / Heads
	FFN     int // intermediate size
	Vocab   int // 0: the tokenizer's vocabulary size
	SeqLen  int // max positions
	Tie     bool
	Seed    int64
}

// Data is a dataset on disk and how to read and split it.
type Data struct {
	// Path is a file, or an "hf-dataset:ORG/NAME[@REV]" reference when
	// Dataset is set.
	Path string
	// Dataset is the Hugging Face dataset split Path names, resolved in
	// the local hub cache; nil for a file.
	Dataset *Dataset
	// Format is "text" (documents separated by blank lines), "jsonl" (one
	// object per line, text in Field), "chat" (JSON lines or a JSON array of
	// conversations under "messages" or "conversations", with role/content
	// or ShareGPT from/value turns), or "instruction" (Alpaca
	// instruction/input/output records, as JSON lines or a JSON array).
	Format string
	// Field is the JSON field holding the text for jsonl data.
	Field string
	// Template is "none" (documents are plain text) or "model" (chat and
	// instruction data rendered with the model's own chat template, so the
	// tokens are those the model sees in training and serving).
	Template string
	// Thinking, when set, is passed to the chat template as enable_thinking.
	Thinking *bool
	// Split selects the fraction [From, To) of the documents, so calibration
	// and evaluation can draw disjoint parts of one file.
	Split Split
}

// Dataset is one split of a Hugging Face dataset in the local hub cache.
type Dataset struct {
	// Config is the config (subset) directory the split was found in
	// and Split the split's name.
	Config, Split string
	// Commit is the snapshot the reference resolved to.
	Commit string
	// Files are the split's parquet files (absolute), in order.
	Files []string
}

// Split is a half-open range of document fractions.
type Split struct {
	From float64
	To   float64
}

// Calibration is the distribution the pruning method measures the model on.
type Calibration struct {
	Data    Data
	Samples int
	SeqLen  int
	Seed    int64
}

// Prune selects a pruning method and its parameters. Paradigm and Method
// are validated against the registry of built methods by the compiler.
type Prune struct {
	Paradigm string // "depth", "width", "dynamic", or "none"
	Method   string // e.g. "shortgpt"
	// Depth pruning: exactly one of Remove, Ratio, Layers is set.
	Remove int
	Ratio  float64
	Layers []int
	// Options are the method's own fields (declared in its spec,
	// lrmc/methods/spec), each resolved or given its default; nil for a
	// method without fields.
	Options Options
}

// Options hold a method's own fields by name. Values are int, float64,
// bool, string or []int, as the field's spec declares.
type Options map[string]any

// Int returns an int option (0 when absent).
func (o Options) Int(name string) int { v, _ := o[name].(int); return v }

// Float returns a float option (0 when absent).
func (o Options) Float(name string) float64 { v, _ := o[name].(float64); return v }

// Bool returns a bool option (false when absent).
func (o Options) Bool(name string) bool { v, _ := o[name].(bool); return v }

// String returns a string option ("" when absent).
func (o Options) String(name string) string { v, _ := o[name].(string); return v }

// Ints returns an []int option (nil when absent).
func (o Options) Ints(name string) []int { v, _ := o[name].([]int); return v }

// Eval is one named evaluation.
type Eval struct {
	// Name is the evaluation's column in the results (a map key, a list
	// item's name, or its task); unique within a run.
	Name string
	// Field is where the evaluation was written, "eval.piqa" or "eval[0]",
	// for messages.
	Field string
	// Task is "perplexity" or a multiple-choice task ("piqa", …).
	Task string
	Data Data
	// Samples is the number of windows (perplexity) or of items, the
	// file's first (multiple choice); 0 means all.
	Samples int
	SeqLen  int // perplexity's window length
	// Fewshot examples precede each multiple-choice item, drawn with Seed
	// from the file's other items.
	Fewshot int
	Seed    int64
	// Def defines a multiple-choice task (nil for perplexity and
	// generation).
	Def *TaskDef
	// Gen defines a generation task, the eval's settings merged over the
	// task's (nil for other tasks).
	Gen *GenTask
}

// GenTask is a generation task as data (schema #GenTask) with the
// settings it runs with.
type GenTask struct {
	// Text and Target are doc_to_text and doc_to_target templates;
	// Delimiter and FewshotDelimiter join few-shot examples.
	Text, Target, Delimiter, FewshotDelimiter string
	Stop                                      []string
	MaxNewTokens                              int
	// Extraction is "gsm8k", "boxed", "exact" or "regex" (Regex, the
	// GroupSelect-th match); IgnoreCase and IgnorePunctuation are
	// exact_match's options.
	Extraction                    string
	Regex                         string
	GroupSelect                   int
	IgnoreCase, IgnorePunctuation bool
	// Chat renders the prompt with the model's chat template; Thinking,
	// when set, is its enable_thinking.
	Chat     bool
	Thinking *bool
	// N samples per item at Temperature (0: greedy) and TopP.
	N                 int
	Temperature, TopP float64
}

// TaskDef is a multiple-choice task as data, as lm-eval's yaml writes one
// (see schema #Task): templates with {{ field }} holes.
type TaskDef struct {
	Text             string
	Choices          []string // one template per choice, or
	ChoicesField     string   // the field holding the choices
	Gold             string   // the field holding the answer
	Preprocess       string   // "" or "hellaswag"
	Delimiter        string
	FewshotDelimiter string
	// GoldLabels or GoldLabelsField (the field holding them) are the
	// choices' labels, among which Gold's value is looked up.
	GoldLabels      []string
	GoldLabelsField string
	// Target, when set, is the continuation every choice shares; the
	// choices are then contexts (WinoGrande's partial scoring).
	Target string
	// Metrics are the metrics reported; nil for acc and acc_norm.
	Metrics []string
}

// MultipleChoice reports whether the evaluation is scored by comparing
// the log-likelihoods of choices.
func (e Eval) MultipleChoice() bool { return e.Task != "" && e.Task != "perplexity" && e.Gen == nil }

// Generation reports whether the evaluation generates text and scores
// the answers extracted from it.
func (e Eval) Generation() bool { return e.Gen != nil }

// Speed says how to measure a model's speed on this machine: one prefill
// of Prefill tokens and Decode greedy decode steps, each Reps times (the
// median is reported), on Threads threads (0: GOMAXPROCS).
type Speed struct {
	Prefill, Decode, Reps, Threads int
}

// Cluster holds the Slurm request of every job (empty strings and zero:
// not set).
type Cluster struct {
	Partition, Account string
	CPUs               int
	Mem, Time          string
}

// Output says where artifacts go; nothing here changes a node's key.
type Output struct {
	Dir     string   // absolute
	Formats []string // "llama2c", "hf", "gguf"
	// DType is the weight type of hf and gguf exports: "float32",
	// "bfloat16" or "float16".
	DType string
}

// Pos is where a value was written in a recipe file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// FieldPath names a field of a run for error messages and the Positions
// map: `runs."name".prune.remove`. An empty run names a top-level field.
func FieldPath(run, field string) string {
	if run == "" {
		return field
	}
	return fmt.Sprintf("runs.%q.%s", run, field)
}

// Where returns "file:line:col: path" for a field path, so plan-time checks
// (those that need the model) report like the compiler does. A field
// without a recorded position (a default) is reported at its nearest
// written ancestor (calibration for calibration.seqLen, at last the run
// itself), so every error names a line; only a recipe that records no
// position at all falls back to the file.
func (r *Recipe) Where(path string) string {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := r.Positions[p]; ok {
			return pos.String() + ": " + path
		}
	}
	return r.File + ": " + path
}

// parentPath is the path of a field path's parent: "a.b" for "a.b.c" and
// "a.b[2]", `runs."x"` for `runs."x".model`; "" for a top-level field or
// a run.
func parentPath(path string) string {
	head, rest := "", path
	if strings.HasPrefix(path, `runs."`) {
		// A run's name is quoted and may hold dots: one step.
		if end := strings.Index(path[len(`runs."`):], `"`); end >= 0 {
			head = path[:len(`runs."`)+end+1]
			rest = path[len(head):]
		}
	}
	i := strings.LastIndexAny(rest, ".[")
	if i < 0 {
		return ""
	}
	if i == 0 && head != "" {
		return head
	}
	return head + rest[:i]
}
