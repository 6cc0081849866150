package compiler

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"lrmc/methods/spec"
)

// TestSchemaGolden compares `lrmc schema`'s text (for the methods this
// test binary registers) with testdata/schema.golden; -update rewrites it.
func TestSchemaGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSchema(&b); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/schema.golden"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("WriteSchema differs from %s (go test ./compiler -run SchemaGolden -update, then review the diff)", golden)
	}
}

// TestSchemaFieldsFollowTheSchema: the listing is read from the schema, not
// kept beside it. A field a method registers is listed with its doc and
// default; every field #Defaults sets is listed with its value; the
// documented defaults the compiler derives are said.
func TestSchemaFieldsFollowTheSchema(t *testing.T) {
	spec.Register(spec.Spec{Paradigm: "depth", Name: "doc-test", Fields: []spec.Field{
		{Name: "docTestKnob", CUE: "#Count & >=3", Default: 7, Doc: "a knob only this test registers"}}})
	defer spec.Unregister("depth/doc-test")
	fields, err := SchemaFields()
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]FieldDoc{}
	for _, f := range fields {
		if _, dup := by[f.Path]; dup {
			t.Errorf("%s listed twice", f.Path)
		}
		by[f.Path] = f
	}
	for path, want := range map[string]FieldDoc{
		"prune.docTestKnob":           {Type: "int & >=3", Default: "7 for depth/doc-test", Doc: "a knob only this test registers\nMethods: depth/doc-test."},
		"calibration.data.split.to":   {Type: "number & >0 & <=1", Default: "0.9"},
		"eval.<name>.data.split.from": {Type: "number & >=0 & <1", Default: "0.9"},
		"recovery.lr":                 {Type: "number & >0", Default: "0.0004 for lora, 0.00002 for full"},
		"recovery.data":               {Type: "struct", Default: "the run's calibration data"},
		"recovery.data.split.from":    {Type: "number & >=0 & <1", Default: "the calibration's"},
		"output.formats":              {Type: "[...string]", Default: `["llama2c"]`},
		"model.synthetic.layers":      {Type: "int & >=1"},
		"tasks.<name>.metrics":        {Type: `[...("acc" | "acc_norm")] & list.MinItems(1) & list.UniqueItems()`},
		"runs":                        {Type: "map of #Run by name"},
		"speed.threads":               {Type: "int & >=0", Default: "0"},
		"recovery.temperature":        {Type: "number & >0", Default: "2 for kd"},
		"calibration.data.template":   {Type: "string"},
		"model.synthetic.arch":        {Type: "string", Doc: `"llama", "qwen2", "qwen3" or "mistral"` + "\n"},
	} {
		got, ok := by[path]
		switch {
		case !ok:
			t.Errorf("%s not listed", path)
		case got.Type != want.Type || got.Default != want.Default:
			t.Errorf("%s: type %q default %q; want %q, %q", path, got.Type, got.Default, want.Type, want.Default)
		case want.Doc != "" && got.Doc != want.Doc:
			t.Errorf("%s: doc %q, want %q", path, got.Doc, want.Doc)
		}
	}
	if d := by["calibration.data.template"].Doc; !strings.Contains(d, `"model" for chat and instruction`) {
		t.Errorf("template's doc lacks its derived default: %q", d)
	}
	// Every field of the IR's recipe sections has its schema field.
	for _, p := range []string{"model.path", "calibration.seqLen", "eval.<name>.task", "prune.paradigm",
		"recovery.steps", "output.dtype", "dense", "speed.prefill", "tasks.<name>.text"} {
		if _, ok := by[p]; !ok {
			t.Errorf("%s not listed", p)
		}
	}
}
