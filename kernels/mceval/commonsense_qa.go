package mceval

import (
	"fmt"
	"strings"
)

func init() {
	// commonsense_qa/default.yaml: doc_to_text "Question: {{question.strip()}}
	// \nA. …\nB. …\nC. …\nD. …\nE. …\nAnswer:", doc_to_choice the labels
	// A…E, doc_to_target the answer's index.
	register("commonsense_qa", Task{
		Text: func(d Doc) (string, error) {
			q, err := str(d, "question")
			if err != nil {
				return "", err
			}
			c, err := list(d, "choices")
			if err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString("Question: " + strings.TrimSpace(q))
			for i, s := range c {
				fmt.Fprintf(&b, "\n%c. %s", 'A'+i, s)
			}
			b.WriteString("\nAnswer:")
			return b.String(), nil
		},
		Choices: func(d Doc) ([]string, error) {
			c, err := list(d, "choices")
			labels := make([]string, len(c))
			for i := range c {
				labels[i] = string(rune('A' + i))
			}
			return labels, err
		},
		Gold: func(d Doc) (int, error) { return integer(d, "answer") },
	})
}
