package mceval

func init() {
	// hellaswag.yaml with utils.process_docs: query = preprocess(
	// activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), choices =
	// preprocess(ending) each. The shared file has that context already
	// joined in "ctx" (so ctx_b's capital is lost: lm-eval would write "He"
	// where the file has "he").
	register("hellaswag", Task{
		Text: func(d Doc) (string, error) {
			c, err := str(d, "ctx")
			return Preprocess(c), err
		},
		Choices: func(d Doc) ([]string, error) {
			e, err := list(d, "endings")
			for i := range e {
				e[i] = Preprocess(e[i])
			}
			return e, err
		},
		Gold: func(d Doc) (int, error) { return integer(d, "label") },
	})
}
