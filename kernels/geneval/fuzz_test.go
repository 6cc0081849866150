package geneval

import (
	"strings"
	"testing"
)

// FuzzJudge: any generated text and target is read by every extraction
// without a panic, and each judgement has one answer per filter.
func FuzzJudge(f *testing.F) {
	for _, s := range []string{"#### 7", `\boxed{\frac{1}{2}}`, "<think>x</think> 12", `\boxed{`, "answer is (C)", ""} {
		f.Add(s, "#### 7")
	}
	specs := []ExtractSpec{{Extraction: "gsm8k"}, {Extraction: "boxed"}, {Extraction: "exact", IgnoreCase: true, IgnorePunctuation: true},
		{Extraction: "regex", Regex: `answer is \(?([A-E])`, GroupSelect: -1}}
	var judges []*Judge
	for _, s := range specs {
		j, err := NewJudge(s)
		if err != nil {
			f.Fatal(err)
		}
		judges = append(judges, j)
	}
	f.Fuzz(func(t *testing.T, response, target string) {
		for _, j := range judges {
			jd := j.Judge(response, target)
			if len(jd.Answers) != len(j.Filters()) || len(jd.Correct) != len(j.Filters()) {
				t.Fatalf("%d answers for %d filters", len(jd.Answers), len(j.Filters()))
			}
			_ = j.Gold(target)
		}
		Trace("p", strings.SplitAfter(response, " "), false)
	})
}
