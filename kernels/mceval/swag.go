package mceval

func init() {
	// swag/swag.yaml: doc_to_text startphrase, doc_to_choice the four
	// endings, doc_to_target label.
	register("swag", Task{
		Text:    func(d Doc) (string, error) { return str(d, "startphrase") },
		Choices: func(d Doc) ([]string, error) { return list(d, "choices") },
		Gold:    func(d Doc) (int, error) { return integer(d, "answer") },
	})
}
