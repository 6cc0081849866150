// Package methods registers pruning methods and the statistics they share
// as units: one package per unit (methods/<paradigm>/<name>,
// methods/stats/<name>) declares, in one Register call from its init, its
// recipe fields (spec), its planning and its ops. The compiler, the
// planner and the executor ask the registries this fills, so adding a
// method touches no other package; lrmc/methods/all imports every unit.
//
// Dependencies go one way: units import the planner, the executor's ops
// and the kernels; the planner stays pure and knows no unit.
package methods

import (
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/methods/spec"
	"lrmc/planner"
)

// Unit is what one package registers.
type Unit struct {
	// Spec is the method as a recipe selects it; nil for a unit that is a
	// shared statistic, used by methods through its Go functions.
	Spec *spec.Spec
	// Plan plans the method (required unless Spec is nil or planned).
	Plan planner.MethodFunc
	// Ops are the unit's ops by name, each planned at its Version(); an op
	// embedding ops.Ephemeral is never cached.
	Ops map[string]executor.Op
}

// Register registers a unit with the compiler's, the planner's and the
// executor's registries. Inconsistencies panic at start-up.
func Register(u Unit) {
	if u.Spec != nil && !u.Spec.Planned && u.Plan == nil {
		panic(fmt.Sprintf("methods: %s has no Plan", u.Spec.Key()))
	}
	for name, op := range u.Ops {
		e, ok := op.(interface{ IsEphemeral() bool })
		planner.RegisterOp(name, op.Version(), ok && e.IsEphemeral())
		ops.Register(name, op)
	}
	if u.Spec != nil {
		spec.Register(*u.Spec)
		if !u.Spec.Planned {
			planner.RegisterMethod(u.Spec.Key(), u.Plan)
		}
	}
}

// Planned registers a method that is known but not built: vet rejects a
// recipe using it with "not built yet".
func Planned(paradigm, name string) {
	Register(Unit{Spec: &spec.Spec{Paradigm: paradigm, Name: name, Planned: true}})
}
