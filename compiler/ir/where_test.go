package ir

import "testing"

// A field without a position of its own (a default) is reported at its
// nearest written ancestor, at last its run.
func TestWhereFallsBackToAncestors(t *testing.T) {
	r := &Recipe{File: "r.cue", Positions: map[string]Pos{
		`runs."a.b"`:                  {File: "r.cue", Line: 9, Col: 2},
		`runs."a.b".calibration.data`: {File: "r.cue", Line: 10, Col: 15},
		"eval[0]":                     {File: "r.cue", Line: 3, Col: 8},
	}}
	for path, want := range map[string]string{
		`runs."a.b".calibration.data.split.from`: `r.cue:10:15: runs."a.b".calibration.data.split.from`,
		`runs."a.b".calibration.seqLen`:          `r.cue:9:2: runs."a.b".calibration.seqLen`,
		`runs."a.b".eval[0].seqLen`:              `r.cue:9:2: runs."a.b".eval[0].seqLen`,
		"eval[0].data.split":                     "r.cue:3:8: eval[0].data.split",
		"calibration.seqLen":                     "r.cue: calibration.seqLen",
	} {
		if got := r.Where(path); got != want {
			t.Errorf("Where(%s) = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]string{
		"a.b.c": "a.b", "a.b[2]": "a.b", "a": "", `runs."x.y"`: "", `runs."x.y".model`: `runs."x.y"`,
		`runs."x".eval[0]`: `runs."x".eval`,
	} {
		if got := parentPath(path); got != want {
			t.Errorf("parentPath(%s) = %q, want %q", path, got, want)
		}
	}
}
