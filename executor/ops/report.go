package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/planner"
)

// Metrics are one run's results, as written to its metrics.json. Keys are
// stable: "perplexity", "params", "blocks", and per-task details.
type Metrics map[string]any

// metricsOp gathers a run's evaluations. Inputs: EvalResults in task order.
type metricsOp struct{ jsonCodec[Metrics] }

func (metricsOp) Version() int { return 1 }

func (metricsOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.MetricsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m := Metrics{}
	tasks := map[string]any{}
	for i := range c.Inputs {
		r, err := input[EvalResult](c, i)
		if err != nil {
			return nil, err
		}
		if _, dup := tasks[r.Task]; dup {
			// Several evaluations of one task: keep each under its index.
			tasks[fmt.Sprintf("%s[%d]", r.Task, i)] = r
		} else {
			tasks[r.Task] = r
			if r.Task == "perplexity" {
				m["perplexity"] = r.Perplexity
			}
		}
		m["params"] = r.Params
		m["blocks"] = r.Blocks
	}
	m["tasks"] = tasks
	return m, nil
}

// Results is results.json: the dense baseline and every run.
type Results struct {
	Dense Metrics            `json:"dense,omitempty"`
	Runs  map[string]Metrics `json:"runs"`
}

// resultsOp gathers every run's metrics. Inputs: Metrics in Runs order.
type resultsOp struct{ jsonCodec[Results] }

func (resultsOp) Version() int { return 1 }

func (resultsOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ResultsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	if len(p.Runs) != len(c.Inputs) {
		return nil, fmt.Errorf("%d run names for %d metrics", len(p.Runs), len(c.Inputs))
	}
	r := Results{Runs: map[string]Metrics{}}
	for i, name := range p.Runs {
		m, err := input[Metrics](c, i)
		if err != nil {
			return nil, err
		}
		if name == planner.DenseRun {
			r.Dense = m
		} else {
			r.Runs[name] = m
		}
	}
	return r, nil
}
