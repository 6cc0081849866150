package spec

import (
	"strings"
	"testing"
)

func TestRegisterAndCUE(t *testing.T) {
	Register(Spec{Paradigm: "width", Name: "t1", Fields: []Field{{Name: "groups", CUE: "#Count & >=1", Default: 4}}})
	Register(Spec{Paradigm: "depth", Name: "t2", Fields: []Field{{Name: "groups", CUE: "#Count & >=1", Default: 2}}})
	Register(Spec{Paradigm: "width", Name: "t3", Planned: true})
	t.Cleanup(func() { Unregister("width/t1"); Unregister("depth/t2"); Unregister("width/t3") })

	// Listed by paradigm in the study's order, then by name.
	if got := strings.Join(Keys(false), ","); got != "depth/t2,width/t1" {
		t.Errorf("built = %s", got)
	}
	if got := strings.Join(Keys(true), ","); got != "width/t3" {
		t.Errorf("planned = %s", got)
	}
	if got := strings.Join(Paradigms(), ","); got != "depth,width" {
		t.Errorf("paradigms = %s", got)
	}
	// One field declared by two methods is one schema field.
	if c := CUE(); strings.Count(c, "groups?: #Count & >=1") != 1 || !strings.Contains(c, "#Prune: {") {
		t.Errorf("CUE:\n%s", c)
	}
	_, owners := Fields()
	if got := strings.Join(owners["groups"], ","); got != "depth/t2,width/t1" {
		t.Errorf("owners = %s", got)
	}
}

func TestRegisterRejects(t *testing.T) {
	Register(Spec{Paradigm: "width", Name: "a", Fields: []Field{{Name: "rank", CUE: "int", Default: 1}}})
	t.Cleanup(func() { Unregister("width/a") })
	for name, s := range map[string]Spec{
		"duplicate":      {Paradigm: "width", Name: "a"},
		"bad identifier": {Paradigm: "width", Name: "b", Fields: []Field{{Name: "a-b", CUE: "int", Default: 1}}},
		"no kind":        {Paradigm: "width", Name: "c", Fields: []Field{{Name: "x", CUE: "int"}}},
		"reserved":       {Paradigm: "width", Name: "d", Fields: []Field{{Name: "method", CUE: "string", Default: "x"}}},
		"conflicting":    {Paradigm: "width", Name: "e", Fields: []Field{{Name: "rank", CUE: "number", Default: 1.0}}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			Register(s)
		}()
	}
}
