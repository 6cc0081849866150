package hfdataset

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"lrmc/kernels/hfdataset/hubtest"
)

const commit = "0123456789abcdef0123456789abcdef01234567"

var arcRows = []hubtest.ARC{
	{ID: "q1", Question: "Which is a mammal?", Choices: hubtest.Choices{Text: []string{"shark", "whale", "trout"}, Label: []string{"A", "B", "C"}}, AnswerKey: "B"},
	{ID: "q2", Question: "What melts ice?", Choices: hubtest.Choices{Text: []string{"cold", "heat", "salt water", "wind"}, Label: []string{"1", "2", "3", "4"}}, AnswerKey: "2"},
}

// An ARC-shaped split, written by parquet-go as the hub stores it (blobs
// and links), resolves through refs/main and reads back as the records
// its JSON would decode to, nested choices included.
func TestResolveAndReadARC(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	snap := hubtest.Snapshot(t, cache, "allenai/ai2_arc", "main", commit)
	hubtest.Blob(t, snap, "ARC-Easy/test-00000-of-00002.parquet", arcRows[:1])
	hubtest.Blob(t, snap, "ARC-Easy/test-00001-of-00002.parquet", arcRows[1:])
	hubtest.Blob(t, snap, "ARC-Easy/train-00000-of-00001.parquet", arcRows)
	hubtest.Blob(t, snap, "ARC-Challenge/test-00000-of-00001.parquet", arcRows)

	r, err := Resolve("hf-dataset:allenai/ai2_arc", "ARC-Easy", "test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(snap, "ARC-Easy", "test-00000-of-00002.parquet"), filepath.Join(snap, "ARC-Easy", "test-00001-of-00002.parquet")}
	if !reflect.DeepEqual(r.Files, want) || r.Commit != commit || r.Revision != "main" || r.Config != "ARC-Easy" {
		t.Fatalf("Resolve = %+v", r)
	}
	var got []map[string]any
	for _, f := range r.Files {
		rows, err := ReadRows(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows...)
	}
	wantRows := []map[string]any{
		{"id": "q1", "question": "Which is a mammal?", "answerKey": "B",
			"choices": map[string]any{"text": []any{"shark", "whale", "trout"}, "label": []any{"A", "B", "C"}}},
		{"id": "q2", "question": "What melts ice?", "answerKey": "2",
			"choices": map[string]any{"text": []any{"cold", "heat", "salt water", "wind"}, "label": []any{"1", "2", "3", "4"}}},
	}
	if !reflect.DeepEqual(got, wantRows) {
		t.Errorf("rows:\n got %#v\nwant %#v", got, wantRows)
	}
	cols, err := Columns(r.Files[0])
	if err != nil || !reflect.DeepEqual(cols, []string{"id", "question", "choices", "answerKey"}) {
		t.Errorf("Columns = %v, %v", cols, err)
	}
	// By commit hash, with no refs/ entry needed.
	if r, err := Resolve("hf-dataset:allenai/ai2_arc@"+commit, "ARC-Challenge", "test"); err != nil || len(r.Files) != 1 {
		t.Errorf("by commit: %+v, %v", r, err)
	}
}

// Numbers of every width read as float64, as JSON gives them; nulls as nil.
func TestReadNumbersAndNulls(t *testing.T) {
	type row struct {
		I8    int8     `parquet:"i8"`
		I32   int32    `parquet:"i32"`
		I64   int64    `parquet:"i64"`
		U16   uint16   `parquet:"u16"`
		F32   float32  `parquet:"f32"`
		B     bool     `parquet:"b"`
		Bytes []byte   `parquet:"bytes"`
		Opt   *string  `parquet:"opt,optional"`
		Ints  []int32  `parquet:"ints,list"`
		Empty []string `parquet:"empty,list"`
	}
	path := filepath.Join(t.TempDir(), "x.parquet")
	hubtest.Write(t, path, []row{{I8: -3, I32: 7, I64: 1 << 40, U16: 9, F32: 0.5, B: true, Bytes: []byte("raw"), Ints: []int32{1, 2}}})
	rows, err := ReadRows(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i8": -3.0, "i32": 7.0, "i64": float64(1 << 40), "u16": 9.0, "f32": 0.5, "b": true,
		"bytes": "raw", "opt": nil, "ints": []any{1.0, 2.0}, "empty": []any{}}
	if len(rows) != 1 || !reflect.DeepEqual(rows[0], want) {
		t.Errorf("got %#v\nwant %#v", rows, want)
	}
}

func TestResolveErrors(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	snap := hubtest.Snapshot(t, cache, "allenai/winogrande", "main", commit)
	hubtest.Write(t, filepath.Join(snap, "winogrande_xl", "validation-00000-of-00001.parquet"), []hubtest.WinoGrande{{Sentence: "a _ b", Option1: "x", Option2: "y", Answer: "1"}})
	hubtest.Write(t, filepath.Join(snap, "winogrande_xl", "train-00000-of-00001.parquet"), []hubtest.WinoGrande{{Sentence: "a _ b", Option1: "x", Option2: "y", Answer: "2"}})
	hubtest.Write(t, filepath.Join(snap, "winogrande_debiased", "validation.parquet"), []hubtest.WinoGrande{})
	repo := filepath.Join(cache, "datasets--allenai--winogrande")
	for _, c := range []struct{ ref, config, split, want string }{
		{"hf-dataset:allenai/arc", "", "test", `"hf-dataset:allenai/arc": not in the local hub cache ` + cache + ` (from HF_HUB_CACHE): no ` + filepath.Join(cache, "datasets--allenai--arc")},
		{"hf-dataset:allenai/winogrande@v2", "winogrande_xl", "test", `"hf-dataset:allenai/winogrande@v2": not in the local hub cache ` + cache + ` (from HF_HUB_CACHE): no ` + filepath.Join(repo, "refs", "v2")},
		{"hf-dataset:allenai/winogrande@ffffffffffffffffffffffffffffffffffffffff", "winogrande_xl", "test", `revision ffffffffffffffffffffffffffffffffffffffff is commit ffffffffffffffffffffffffffffffffffffffff, but there is no ` + filepath.Join(repo, "snapshots", "ffffffffffffffffffffffffffffffffffffffff")},
		{"hf-dataset:allenai/winogrande", "winogrande_xl", "test", `"hf-dataset:allenai/winogrande": config winogrande_xl has no split "test" (no test-*.parquet, test.parquet or test/*.parquet in ` + filepath.Join(snap, "winogrande_xl") + `); splits: train, validation`},
		{"hf-dataset:allenai/winogrande", "winogrande_s", "train", `"hf-dataset:allenai/winogrande": no config "winogrande_s" (no directory ` + filepath.Join(snap, "winogrande_s") + `); configs: winogrande_debiased, winogrande_xl`},
		{"hf-dataset:allenai/winogrande", "", "train", `"hf-dataset:allenai/winogrande": name a config; configs in ` + snap + `: winogrande_debiased, winogrande_xl`},
		{"hf-dataset:allenai/winogrande", "winogrande_xl", "", `"hf-dataset:allenai/winogrande": no split named (train, validation, test, …)`},
		{"hf-dataset:allenai/winogrande", "../x", "train", `config "../x" is not a config name`},
		{"hf-dataset:winogrande", "", "train", `"hf-dataset:winogrande": want hf-dataset:ORG/NAME or hf-dataset:ORG/NAME@REVISION`},
	} {
		_, err := Resolve(c.ref, c.config, c.split)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Resolve(%q, %q, %q):\n got %v\nwant %s", c.ref, c.config, c.split, err, c.want)
		}
	}
	// The default config of a dataset with one is data/.
	snap2 := hubtest.Snapshot(t, cache, "me/tiny", "main", commit)
	hubtest.Write(t, filepath.Join(snap2, "data", "test-00000-of-00001.parquet"), []hubtest.WinoGrande{})
	if r, err := Resolve("hf-dataset:me/tiny", "", "test"); err != nil || r.Config != "data" || len(r.Files) != 1 {
		t.Errorf("default config: %+v, %v", r, err)
	}
}

func TestReadBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.parquet")
	hubtest.Write(t, good, arcRows)
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"text.parquet":      []byte("id,question\n1,why\n"),
		"truncated.parquet": b[:len(b)/2],
		"empty.parquet":     nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadRows(p); err == nil || !strings.HasPrefix(err.Error(), p+": not a readable parquet file") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Damage in the data pages (the footer intact): an error naming the
	// file, never a panic or made-up rows.
	for _, off := range []int{4, 16, 40, 80} {
		bad := append([]byte{}, b...)
		for i := off; i < off+8 && i < len(bad)-8; i++ {
			bad[i] ^= 0xff
		}
		p := filepath.Join(dir, "damaged.parquet")
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		rows, err := ReadRows(p)
		if err == nil && !reflect.DeepEqual(len(rows), len(arcRows)) {
			t.Errorf("damage at %d: %d rows, no error", off, len(rows))
		}
		if err != nil && !strings.HasPrefix(err.Error(), p+": ") {
			t.Errorf("damage at %d: %v does not name the file", off, err)
		}
	}
}

// Files written by pyarrow (as the hub's are) make every column optional:
// optional strings, optional LIST groups of optional elements, optional
// groups. They read like the required ones, nulls as nil.
func TestReadOptionalColumns(t *testing.T) {
	str := parquet.Optional(parquet.String())
	list := parquet.Optional(parquet.List(str))
	schema := parquet.NewSchema("schema", parquet.Group{
		"question":  str,
		"choices":   parquet.Optional(parquet.Group{"text": list, "label": list}),
		"answerKey": str,
	})
	path := filepath.Join(t.TempDir(), "arrow.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[map[string]any](f, schema)
	rows := []map[string]any{
		{"question": "q?", "choices": map[string]any{"text": []any{"x", "y"}, "label": []any{"A", "B"}}, "answerKey": "B"},
		{"question": "r?", "choices": map[string]any{"text": []any{"z"}, "label": []any{"1"}}, "answerKey": nil},
	}
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadRows(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Errorf("rows:\n got %#v\nwant %#v", got, rows)
	}
}
