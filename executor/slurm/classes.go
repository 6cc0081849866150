// Package slurm hands the heavy nodes of a planned graph to a Slurm
// cluster: one batch job per heavy node that needs to run, each running
// `lrmc exec --graph` on the node of the planned graph (saved as JSON in
// the job directory, so that jobs run what was planned whatever happens to
// the recipe meanwhile), with --dependency=afterok edges drawn from the
// DAG. Results travel through the shared (remote) cache; the cheap rest of
// the graph and the outputs are left to an ordinary local apply.
//
// Everything that decides (which nodes become jobs, their edges, their
// resources, the batch scripts) is pure; the four Slurm commands sit behind
// the small Cluster interface, so the submission and polling logic is
// tested against fakes.
package slurm

import (
	"lrmc/methods/depth"
	"lrmc/methods/depth/shortenedppl"
	"lrmc/methods/depth/shortgpt"
	"lrmc/methods/depth/sleb"
	"lrmc/methods/dynamic"
	"lrmc/methods/sparse"
	"lrmc/methods/stats/capture"
	"lrmc/methods/stats/inputstats"
	"lrmc/methods/stats/taylor"
	"lrmc/methods/width"
	"lrmc/methods/width/flap"
	"lrmc/methods/width/llmpruner"
	"lrmc/methods/width/slicegpt"
	"lrmc/methods/width/wandasp"
	"lrmc/planner"
)

// Class says where an op runs on a cluster.
type Class int

const (
	// Cheap ops (tokenizing, cutting windows, choosing blocks from scores,
	// gathering metrics, exports) run inline: inside the job that needs
	// them, or in the collecting apply.
	Cheap Class = iota
	// Heavy ops push data through a model (capture, scoring, evaluation,
	// measuring speed): each gets its own job.
	Heavy
	// Training ops are heavy ops that also hold gradients and optimizer
	// state, so they ask for more memory.
	Training
)

// classes is the one place that says which ops are heavy. Every op the
// planner can emit must be listed (TestEveryOpIsClassified), so a new op
// is classified when it is added rather than silently run inline.
var classes = map[string]Class{
	// Core ops.
	planner.OpSource:         Cheap,
	planner.OpModelLoad:      Cheap, // ephemeral: loaded by whoever needs it
	planner.OpTokens:         Cheap,
	planner.OpCalibWindows:   Cheap,
	planner.OpEvalWindows:    Cheap,
	planner.OpPerplexity:     Heavy,
	planner.OpMetrics:        Cheap,
	planner.OpMCItems:        Cheap,
	planner.OpMCScore:        Heavy,
	planner.OpMCAccuracy:     Cheap,
	planner.OpGenItems:       Cheap,
	planner.OpGenerate:       Heavy,
	planner.OpGenScore:       Cheap,
	planner.OpGenMetrics:     Cheap,
	planner.OpResults:        Cheap,
	planner.OpExportLlama2c:  Cheap,
	planner.OpExportHF:       Cheap,
	planner.OpExportGGUF:     Cheap,
	planner.OpSFT:            Cheap,
	planner.OpRecover:        Training,
	planner.OpModelRecovered: Cheap,
	planner.OpExportPEFT:     Cheap,
	planner.OpSpeed:          Heavy, // measured on the machine that will serve the model

	// Statistics and methods (lrmc/methods/...).
	capture.OpEmbed:         Cheap, // an embedding lookup
	capture.OpBlock:         Heavy,
	inputstats.Op:           Heavy,
	taylor.Op:               Training, // a backward pass through the model
	shortgpt.OpBI:           Cheap,    // cosines of captured hidden states
	shortenedppl.OpBlockPPL: Heavy,
	sleb.OpStep:             Heavy,
	depth.OpPrune:           Cheap,
	depth.OpApply:           Cheap,
	sparse.OpPrune:          Cheap, // ephemeral: masks applied from cached statistics
	sparse.OpSummary:        Cheap,
	width.OpApply:           Cheap,
	flap.Op:                 Heavy,
	wandasp.Op:              Heavy,
	llmpruner.Op:            Training,
	slicegpt.OpInputCov:     Heavy,
	slicegpt.OpSlice:        Heavy,
	slicegpt.OpModel:        Cheap,
	slicegpt.OpExport:       Cheap,
	dynamic.OpRouters:       Training,
	dynamic.OpLoRA:          Training,
	dynamic.OpModel:         Cheap,
	dynamic.OpHF:            Cheap,
	dynamic.OpFiles:         Cheap,
}

// ClassOf returns op's class. An op never cached (planner.IsEphemeral) is
// cheap whatever the table says: a job's only product is a cache entry.
// An op missing from the table counts as heavy, the safe side.
func ClassOf(op string) Class {
	if planner.IsEphemeral(op) {
		return Cheap
	}
	c, ok := classes[op]
	if !ok {
		return Heavy
	}
	return c
}

// IsHeavy reports whether op's nodes get their own job.
func IsHeavy(op string) bool { return ClassOf(op) != Cheap }
