package mceval

import (
	"fmt"
)

func init() {
	// super_glue/boolq/default.yaml: doc_to_text
	// "{{passage}}\nQuestion: {{question}}?\nAnswer:", doc_to_choice
	// ["no", "yes"], doc_to_target label (answer true is "yes").
	register("boolq", Task{
		Text: func(d Doc) (string, error) {
			p, err1 := str(d, "passage")
			q, err2 := str(d, "question")
			return p + "\nQuestion: " + q + "?\nAnswer:", firstErr(err1, err2)
		},
		Choices: func(Doc) ([]string, error) { return []string{"no", "yes"}, nil },
		Gold: func(d Doc) (int, error) {
			v, ok := d["answer"].(bool)
			if !ok {
				return 0, fmt.Errorf("field \"answer\" is %T, want a boolean", d["answer"])
			}
			if v {
				return 1, nil
			}
			return 0, nil
		},
	})
}
