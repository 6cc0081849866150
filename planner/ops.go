package planner

// The core ops the planner emits, with their versions and parameter types.
// This file is the contract between the planner and the executor's op
// implementations (executor/ops), which decode Params into these structs.
// Pruning methods and the statistics they share declare their own ops in
// their packages (lrmc/methods/...) and register them (RegisterOp).
// Bump an op's version whenever its algorithm or output encoding changes: the
// key changes with it, so stale cache entries are never reused.
const (
	// OpSource stands for a file; keyed by its content digest.
	OpSource = "source"
	// OpModelLoad loads a checkpoint and its tokenizer (not cached: the file is the cache).
	OpModelLoad = "model.load"
	// OpTokens reads a dataset, selects a split of its documents and
	// tokenizes them into one stream.
	OpTokens = "data.tokens"
	// OpCalibWindows samples calibration windows from a token stream.
	OpCalibWindows = "calib.windows"
	// OpEvalWindows cuts evaluation windows from a token stream.
	OpEvalWindows = "eval.windows"
	// OpPerplexity evaluates a model on evaluation windows.
	OpPerplexity = "eval.perplexity"
	// OpMCItems reads a multiple-choice task's jsonl file into items
	// (context with its few-shot examples, choices, gold) and tokenizes
	// each as lm-eval splits context and continuation. The model is not an
	// input: models that share a tokenizer share the items.
	OpMCItems = "eval.mc.items"
	// OpMCScore is the log-likelihood of every choice of every item under
	// a model; its result, one JSON line per item, is also the
	// evaluation's samples file.
	OpMCScore = "eval.mc.score"
	// OpMCAccuracy turns the scores into acc and acc_norm with their
	// standard errors.
	OpMCAccuracy = "eval.mc.accuracy"
	// OpGenItems renders a generation task's documents into prompts and
	// targets (few-shot examples included); the model and its tokenizer
	// are not inputs, so every model shares them.
	OpGenItems = "eval.gen.items"
	// OpGenerate generates n samples for every item with a model (the
	// prompt through its chat template when asked), checkpointing as it
	// goes; it keeps the raw texts and think traces.
	OpGenerate = "eval.gen.generate"
	// OpGenScore extracts answers from the generations and scores them
	// against the targets; its result, one JSON line per item, is also the
	// evaluation's samples file. A new extraction reruns only this.
	OpGenScore = "eval.gen.score"
	// OpGenMetrics turns the scored samples into the evaluation's metrics.
	OpGenMetrics = "eval.gen.metrics"
	// OpMetrics gathers a run's metrics into metrics.json.
	OpMetrics = "report.metrics"
	// OpResults gathers every run's metrics into results.json.
	OpResults = "report.results"
	// OpExportLlama2c writes a model in the llama2.c checkpoint format.
	OpExportLlama2c = "export.llama2c"
	// OpSFT reads training data into one token stream with a loss mask
	// (assistant tokens only for chat and instruction data).
	OpSFT = "data.sft"
	// OpRecover trains a pruned model (LoRA or full fine-tuning), saving
	// checkpoints as it goes.
	OpRecover = "recover.train"
	// OpModelRecovered applies recovery's result to the pruned model (not
	// cached: merging adapters is cheap).
	OpModelRecovered = "model.recovered"
	// OpExportPEFT writes a LoRA adapter in PEFT's layout.
	OpExportPEFT = "export.peft"
	// OpExportHF writes a model as a Hugging Face checkpoint directory.
	OpExportHF = "export.hf"
	// OpExportGGUF writes a model as a GGUF file for llama.cpp.
	OpExportGGUF = "export.gguf"
	// OpSpeed measures a model's prefill and decode tokens/s on the
	// machine that runs it. Its result is a measurement, not a function of
	// its inputs; it is cached like any result so a rerun measures nothing
	// again, and it names the machine it was taken on.
	OpSpeed = "bench.speed"
)

// Versions holds the current version of every op.
var Versions = map[string]int{
	OpSource:         1,
	OpModelLoad:      1,
	OpTokens:         1,
	OpCalibWindows:   1,
	OpEvalWindows:    1,
	OpPerplexity:     1,
	OpMetrics:        2,
	OpMCItems:        1,
	OpMCScore:        2, // 2: batched continuations, per-choice truncation
	OpMCAccuracy:     1,
	OpGenItems:       1,
	OpGenerate:       1,
	OpGenScore:       1,
	OpGenMetrics:     1,
	OpResults:        1,
	OpExportLlama2c:  1,
	OpExportHF:       2, // 2: tokenizer files for every source, bos/eos ids, generation_config.json
	OpExportGGUF:     1,
	OpSFT:            1,
	OpRecover:        1,
	OpModelRecovered: 1,
	OpExportPEFT:     1,
	OpSpeed:          1,
}

// SourceParams identify a file by content.
type SourceParams struct {
	Digest string `json:"digest"`
}

// ModelLoadParams: inputs are the model source and the tokenizer source,
// or only the tokenizer source for a synthetic model.
type ModelLoadParams struct {
	Format          string           `json:"format"` // "llama2c", "hf", "gguf" or "synthetic"
	TokenizerFormat string           `json:"tokenizerFormat"`
	Synthetic       *SyntheticParams `json:"synthetic,omitempty"`
	// DType is the in-memory weight type, "" for float32.
	DType string `json:"dtype,omitempty"`
	// Compute is "bf16" for bfloat16 arithmetic, "" for float32 (which
	// keeps the keys of float32-compute plans as they were).
	Compute string `json:"compute,omitempty"`
}

// SyntheticParams is the shape and seed of a random-weight model (the
// vocabulary resolved from the tokenizer when the recipe leaves it out).
type SyntheticParams struct {
	Arch    string `json:"arch"`
	Layers  int    `json:"layers"`
	Dim     int    `json:"dim"`
	Heads   int    `json:"heads"`
	KVHeads int    `json:"kvHeads"`
	HeadDim int    `json:"headDim"`
	FFN     int    `json:"ffn"`
	Vocab   int    `json:"vocab"`
	SeqLen  int    `json:"seqLen"`
	Tie     bool   `json:"tie"`
	Seed    int64  `json:"seed"`
}

// TokensParams: inputs are the data source and the tokenizer source. The
// model is not an input, so models that share a tokenizer share the tokens.
type TokensParams struct {
	TokenizerFormat string  `json:"tokenizerFormat"`
	Vocab           int     `json:"vocab"`
	Format          string  `json:"format"`
	Field           string  `json:"field,omitempty"`
	From            float64 `json:"from"`
	To              float64 `json:"to"`
	// Template "model" renders chat and instruction data with the
	// tokenizer's chat template; Thinking sets its enable_thinking.
	Template string `json:"template,omitempty"`
	Thinking *bool  `json:"thinking,omitempty"`
}

// CalibWindowsParams: input is a token stream.
type CalibWindowsParams struct {
	Samples int    `json:"samples"`
	SeqLen  int    `json:"seqLen"`
	Seed    uint64 `json:"seed"`
}

// EvalWindowsParams: input is a token stream.
type EvalWindowsParams struct {
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

// PerplexityParams: inputs are a model and evaluation windows.
type PerplexityParams struct {
	SeqLen int `json:"seqLen"`
}

// MCItemsParams: inputs are the task's jsonl file and the tokenizer
// source; for a Hugging Face dataset (Format "parquet"), the split's first
// parquet file, the tokenizer, then its other parquet files in order. The
// first Samples documents of the split (0: all) become items, each with
// Fewshot examples drawn with Seed from the split's other documents.
type MCItemsParams struct {
	Task string `json:"task"`
	// Format is "" (jsonl) or "parquet"; empty keeps the keys of jsonl
	// items as they were before datasets could be read.
	Format string `json:"format,omitempty"`
	// Def is the task's definition, in the key: editing a task's
	// templates invalidates its items and everything downstream.
	Def             MCTaskParams `json:"def"`
	From            float64      `json:"from"`
	To              float64      `json:"to"`
	Samples         int          `json:"samples"`
	Fewshot         int          `json:"fewshot"`
	Seed            int64        `json:"seed"`
	TokenizerFormat string       `json:"tokenizerFormat"`
	Vocab           int          `json:"vocab"`
}

// MCTaskParams is a multiple-choice task as data (ir.TaskDef).
type MCTaskParams struct {
	Text             string   `json:"text"`
	Choices          []string `json:"choices,omitempty"`
	ChoicesField     string   `json:"choicesField,omitempty"`
	Gold             string   `json:"gold"`
	Preprocess       string   `json:"preprocess,omitempty"`
	Delimiter        string   `json:"delimiter,omitempty"`
	FewshotDelimiter string   `json:"fewshotDelimiter,omitempty"`
	// The fields added since are left out when unset, so tasks that do
	// not use them keep their keys.
	GoldLabels      []string `json:"goldLabels,omitempty"`
	GoldLabelsField string   `json:"goldLabelsField,omitempty"`
	Target          string   `json:"target,omitempty"`
}

// MCScoreParams: inputs are a model and the items (OpMCItems).
type MCScoreParams struct {
	Task string `json:"task"`
}

// MCAccuracyParams: inputs are the scores (OpMCScore) and the model
// scored, for its shape.
type MCAccuracyParams struct {
	Task string `json:"task"`
	// Metrics are those reported when not both acc and acc_norm.
	Metrics []string `json:"metrics,omitempty"`
}

// MetricsParams: inputs are the run's evaluation nodes, in Tasks order
// (named by Names), then the depth decision when Depth is set, then the
// recovery result when Recovery is set. Model-shape metrics (params,
// blocks) come with each evaluation's result.
type MetricsParams struct {
	Tasks []string `json:"tasks"`
	// Names is always in the key (no omitempty), so metrics nodes planned
	// before evaluations had names never match; the version stays.
	Names    []string `json:"names"`
	Depth    bool     `json:"depth,omitempty"`
	Recovery bool     `json:"recovery,omitempty"` // then the recovery node follows
	Speed    bool     `json:"speed,omitempty"`    // then, last, the speed node
	// Config is how the run was made (method, ratio, recovery), copied
	// into metrics.json under "config". Part of the key like any
	// parameter: it changes only metrics and results nodes, which gather
	// cached results and cost nothing to recompute.
	Config *RunConfig `json:"config,omitempty"`
}

// SpeedParams: input is a model. Threads 0 measures with GOMAXPROCS.
type SpeedParams struct {
	Prefill int `json:"prefill"`
	Decode  int `json:"decode"`
	Reps    int `json:"reps"`
	Threads int `json:"threads"`
}

// ResultsParams: inputs are the metrics nodes, in Runs order; the dense
// baseline, when present, is named "dense".
type ResultsParams struct {
	Runs []string `json:"runs"`
}

// RecoverParams: inputs are the pruned model, the training stream
// (OpSFT), and the teacher model when Loss is "kd".
type RecoverParams struct {
	Method       string   `json:"method"` // "lora" or "full"
	Steps        int      `json:"steps"`
	Batch        int      `json:"batch"`
	SeqLen       int      `json:"seqLen"`
	Accumulation int      `json:"accumulation"`
	LR           float64  `json:"lr"`
	Warmup       float64  `json:"warmup"`
	Schedule     string   `json:"schedule"`
	WeightDecay  float64  `json:"weightDecay"`
	MaxGradNorm  float64  `json:"maxGradNorm"`
	Rank         int      `json:"rank,omitempty"`
	Alpha        float64  `json:"alpha,omitempty"`
	Dropout      float64  `json:"dropout,omitempty"`
	Targets      []string `json:"targets,omitempty"`
	Loss         string   `json:"loss"`
	Temperature  float64  `json:"temperature,omitempty"`
	TopK         int      `json:"topK,omitempty"`
	Seed         int64    `json:"seed"`
	// CheckpointEvery does not change the result (resuming is exact), but
	// it is kept in the key: it is what a user asked for, and cheap.
	CheckpointEvery int `json:"checkpointEvery"`
}

// PEFTParams: input is a recovery result. Base is the adapter's
// base_model_name_or_path.
type PEFTParams struct {
	Base string `json:"base"`
}

// ExportParams: input is a model (llama2c); a model and its tokenizer
// source (hf, gguf), whose files or metadata the export carries along.
type ExportParams struct {
	DType           string `json:"dtype,omitempty"` // hf and gguf: float32, bfloat16 or float16
	TokenizerFormat string `json:"tokenizerFormat,omitempty"`
}
