package ops

import (
	"context"
	"encoding/json"
	"fmt"

	"lrmc/executor"
	"lrmc/planner"
)

// Metrics are one run's results, as written to its metrics.json. Keys are
// stable: "perplexity" (the first perplexity evaluation's), "params",
// "blocks", "tasks" (each evaluation's details by its name), "evals"
// (the names in the order written) and "config" (how the run was made:
// paradigm, method, its ratio or count and options, recovery settings;
// planner.RunConfig).
type Metrics map[string]any

// Reporter is a pruning decision that adds to its run's metrics
// (planner.Pruned.Decision).
type Reporter interface {
	Metrics() map[string]any
}

// metricsOp gathers a run's evaluations. Inputs: EvalResults in task order.
type metricsOp struct{ jsonCodec[Metrics] }

func (metricsOp) Version() int { return 2 } // 2: recoveryLoss.losses

func (metricsOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.MetricsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m := Metrics{}
	tasks := map[string]any{}
	evals := len(c.Inputs)
	if p.Speed {
		evals--
		s, err := input[Speed](c, evals)
		if err != nil {
			return nil, err
		}
		// Two numbers (report columns) and how they were measured (a
		// string, which reports do not tabulate).
		ms := map[string]any{"prefillTokensPerS": s.PrefillTokensPerS, "decodeTokensPerS": s.DecodeTokensPerS}
		if d := s.Dynamic; d != nil {
			// A routed model: its speedup over its dense base, measured
			// in the same interleaved repetitions.
			ms["prefillSpeedup"], ms["decodeSpeedup"] = d.PrefillSpeedup, d.DecodeSpeedup
			ms["prefillCpuSpeedup"], ms["decodeCpuSpeedup"] = d.PrefillCPUSpeedup, d.DecodeCPUSpeedup
			// What the routers skipped while timed (random tokens).
			ms["prefillSkip"], ms["decodeSkip"] = d.PrefillSkip, d.DecodeSkip
		}
		m["measuredSpeed"] = ms
		m["measuredOn"] = s.Note()
	}
	if p.Recovery {
		evals--
		r, err := input[Recovered](c, evals)
		if err != nil {
			return nil, err
		}
		if n := len(r.Losses); n > 0 {
			// Every step's loss, so reports can draw the training curve.
			m["recoveryLoss"] = map[string]any{"first": r.Losses[0], "last": r.Losses[n-1], "steps": n, "losses": r.Losses}
		}
	}
	if p.Depth {
		// A method's decision reports its own metrics (a depth decision:
		// removed, blockScores, removalOrder).
		evals--
		d, err := input[Reporter](c, evals)
		if err != nil {
			return nil, err
		}
		for k, v := range d.Metrics() {
			m[k] = v
		}
	}
	if len(p.Names) != 0 && len(p.Names) != evals {
		return nil, fmt.Errorf("%d evaluation names for %d evaluations", len(p.Names), evals)
	}
	for i := 0; i < evals; i++ {
		var r EvalResult
		var result any
		if g, ok := c.Inputs[i].(GenResult); ok {
			// A generation evaluation: its own metric columns.
			r, result = EvalResult{Task: g.Task, Params: g.Params, Blocks: g.Blocks}, g
		} else {
			var err error
			if r, err = input[EvalResult](c, i); err != nil {
				return nil, err
			}
			result = r
		}
		// Store the result as a generic map, the form it has when read back
		// from the cache, so metrics.json is byte-identical either way.
		entry, err := asMap(result)
		if err != nil {
			return nil, err
		}
		name := r.Task
		if len(p.Names) > 0 {
			name = p.Names[i]
		}
		tasks[name] = entry
		if _, ok := m["perplexity"]; !ok && r.Task == "perplexity" {
			// The first perplexity evaluation is the run's perplexity, the
			// table's and the reports' headline.
			m["perplexity"] = r.Perplexity
		}
		m["params"] = r.Params
		m["blocks"] = r.Blocks
	}
	m["evals"] = p.Names
	m["tasks"] = tasks
	if p.Config != nil {
		// As a generic map, the form it has when read back from the cache.
		cfg, err := asMap(p.Config)
		if err != nil {
			return nil, err
		}
		m["config"] = cfg
	}
	return m, nil
}

func asMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
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
