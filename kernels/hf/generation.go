package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// GenerationConfigFile is where transformers reads generate()'s defaults.
const GenerationConfigFile = "generation_config.json"

// SpecialIDs are a model's BOS and EOS token ids; -1 for none.
type SpecialIDs struct{ BOS, EOS int32 }

// WriteSpecialIDs makes a saved checkpoint directory name its special
// tokens as transformers expects: bos_token_id and eos_token_id in
// config.json where it lacks them, and a generation_config.json with the
// same ids where the directory has none (one copied from the source model
// is kept as it is). An id of -1 is written as null.
func WriteSpecialIDs(dir string, ids SpecialIDs) error {
	path := filepath.Join(dir, ConfigFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hf: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 1e-05 stays 1e-05
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("hf: %s: %w", path, err)
	}
	id := func(v int32) any {
		if v < 0 {
			return nil
		}
		return v
	}
	changed := false
	for key, v := range map[string]int32{"bos_token_id": ids.BOS, "eos_token_id": ids.EOS} {
		if _, ok := doc[key]; !ok {
			doc[key] = id(v)
			changed = true
		}
	}
	if changed {
		if err := writeJSON(path, doc); err != nil {
			return err
		}
	}
	gpath := filepath.Join(dir, GenerationConfigFile)
	if _, err := os.Stat(gpath); err == nil {
		return nil
	}
	return writeJSON(gpath, map[string]any{
		"_from_model_config": true,
		"bos_token_id":       doc["bos_token_id"],
		"eos_token_id":       doc["eos_token_id"],
	})
}

func writeJSON(path string, doc any) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("hf: %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("hf: %w", err)
	}
	return nil
}
