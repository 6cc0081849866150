package mceval

func init() {
	// piqa.yaml: doc_to_text "Question: {{goal}}\nAnswer:",
	// doc_to_choice "{{[sol1, sol2]}}", doc_to_target label.
	register("piqa", Task{
		Text: func(d Doc) (string, error) {
			g, err := str(d, "goal")
			return "Question: " + g + "\nAnswer:", err
		},
		Choices: func(d Doc) ([]string, error) { return strs(d, "sol1", "sol2") },
		Gold:    func(d Doc) (int, error) { return integer(d, "label") },
	})
}
