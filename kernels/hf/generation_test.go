package hf

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteSpecialIDs adds the ids config.json lacks, keeps those it has and
// the rest of the document as written (1e-05 stays 1e-05), and writes a
// generation_config.json only where there is none.
func TestWriteSpecialIDs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, ConfigFileName)
	os.WriteFile(cfg, []byte(`{"rms_norm_eps": 1e-05, "eos_token_id": 7, "hidden_size": 64}`), 0o644)
	if err := WriteSpecialIDs(dir, SpecialIDs{BOS: -1, EOS: 2}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if v, ok := doc["bos_token_id"]; !ok || v != nil || doc["eos_token_id"] != 7.0 || doc["hidden_size"] != 64.0 || !strings.Contains(string(b), `"rms_norm_eps": 1e-05`) {
		t.Errorf("config.json:\n%s", b)
	}
	g, err := os.ReadFile(filepath.Join(dir, GenerationConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var gen map[string]any
	json.Unmarshal(g, &gen)
	if v, ok := gen["bos_token_id"]; !ok || v != nil || gen["eos_token_id"] != 7.0 || gen["_from_model_config"] != true {
		t.Errorf("generation_config.json:\n%s", g)
	}

	// A generation config of the source model is kept.
	os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(`{"temperature": 0.6}`), 0o644)
	if err := WriteSpecialIDs(dir, SpecialIDs{BOS: 1, EOS: 2}); err != nil {
		t.Fatal(err)
	}
	if g, _ := os.ReadFile(filepath.Join(dir, GenerationConfigFile)); string(g) != `{"temperature": 0.6}` {
		t.Errorf("generation_config.json rewritten: %s", g)
	}
	if err := WriteSpecialIDs(t.TempDir(), SpecialIDs{}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no config.json: %v", err)
	}
}
