package all_test

import (
	"testing"

	"lrmc/executor/ops"
	_ "lrmc/methods/all"
	"lrmc/methods/spec"
	"lrmc/planner"
)

// Every op a unit registers is known to the planner at the version the
// executor implements, and every built method has a planner: what
// executor.New checks at start-up, asserted here for the registered units.
func TestUnitsAreConsistent(t *testing.T) {
	reg := ops.Registry()
	for name, v := range planner.OpVersions() {
		if name == planner.OpSource {
			continue
		}
		op, ok := reg[name]
		switch {
		case !ok:
			t.Errorf("op %s is planned but has no implementation", name)
		case op.Version() != v:
			t.Errorf("op %s: planned v%d, implemented v%d", name, v, op.Version())
		}
	}
	for _, op := range []string{"capture.embed", "capture.block", "shortgpt.bi", "importance.taylor", "importance.blockppl", "sleb.step", "prune.depth", "model.depth"} {
		if _, ok := planner.OpVersion(op); !ok {
			t.Errorf("depth op %s is not registered", op)
		}
	}
	if !planner.IsEphemeral("model.depth") || planner.IsEphemeral("prune.depth") {
		t.Error("model.depth must be ephemeral (never cached) and prune.depth cached")
	}
	if len(spec.Keys(false)) < 4 {
		t.Errorf("built methods: %v", spec.Keys(false))
	}
}

// Registering a name twice is a start-up panic, not a silent override.
func TestDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("registering depth/shortgpt twice did not panic")
		}
	}()
	spec.Register(spec.Spec{Paradigm: "depth", Name: "shortgpt"})
}
