// Package optest runs a registered op on given inputs, for the method
// packages' tests.
package optest

import (
	"context"
	"encoding/json"
	"testing"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/planner"
)

// Run runs op with params on inputs, through its encoding: the result is
// what a later run would read back from the cache.
func Run(t *testing.T, op string, params any, inputs ...any) (any, error) {
	t.Helper()
	impl, ok := ops.Registry()[op]
	if !ok {
		t.Fatalf("op %s is not registered", op)
	}
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	c := &executor.Call{Node: &planner.Node{Op: op, Params: p}, Inputs: inputs, Progress: func(int64, int64) {}}
	v, err := impl.Run(context.Background(), c)
	if err != nil {
		return nil, err
	}
	b, err := impl.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := impl.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return back, nil
}
