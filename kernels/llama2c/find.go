package llama2c

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FindTokenizer looks beside the checkpoint at modelPath for the tokenizer
// llama2.c would pair with it: tokenizer.bin, then tok<vocab>.bin.
func FindTokenizer(modelPath string, vocab int) (string, error) {
	dir := filepath.Dir(modelPath)
	tried := []string{
		filepath.Join(dir, "tokenizer.bin"),
		filepath.Join(dir, fmt.Sprintf("tok%d.bin", vocab)),
	}
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("llama2c: no tokenizer found for %s (vocab %d); tried %s", modelPath, vocab, strings.Join(tried, ", "))
}
