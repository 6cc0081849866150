package textdata

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
)

// writeFile writes content to a fresh file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadDocumentsText(t *testing.T) {
	path := writeFile(t, "docs.txt",
		"  \n\nA line\nsecond line  \n\n\n \t \n  Para two\r\n\r\nlast, no newline")
	got, err := ReadDocuments(path, FormatText, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A line\nsecond line", "Para two", "last, no newline"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
}

func TestReadDocumentsJSONL(t *testing.T) {
	path := writeFile(t, "docs.jsonl",
		`{"text": "first\n  doc ", "n": 1}`+"\n\n   \n"+
			`{"id": 2, "text": "caf\u00e9"}`+"\r\n"+
			`{"text": ""}`)
	got, err := ReadDocuments(path, FormatJSONL, "text")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"first\n  doc ", "café", ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documents (-want +got):\n%s", diff)
	}
}

func TestReadDocumentsErrors(t *testing.T) {
	jsonl := func(lines ...string) string {
		return writeFile(t, "bad.jsonl", strings.Join(lines, "\n"))
	}
	tests := []struct {
		name, path, format, field, want string
	}{
		{"not an object", jsonl(`{"text": "ok"}`, `["text"]`), FormatJSONL, "text",
			"%s:2: the line is not a JSON object"},
		{"missing field", jsonl(``, `{"body": "x"}`), FormatJSONL, "text",
			`%s:2: the object has no field "text"`},
		{"number field", jsonl(`{"text": 3}`), FormatJSONL, "text",
			`%s:1: field "text" is a number, not a string`},
		{"null field", jsonl(`{"text": null}`), FormatJSONL, "text",
			`%s:1: field "text" is null, not a string`},
		{"invalid JSON", jsonl(`{"text": "x"`), FormatJSONL, "text",
			"%s:1: invalid JSON: unexpected end of JSON input"},
		{"no field name", jsonl(`{"text": "x"}`), FormatJSONL, "",
			`%s: format "jsonl" needs the name of the field that holds the text`},
		{"field for text", writeFile(t, "a.txt", "x"), FormatText, "text",
			`%s: format "text" has no fields, but field "text" was given`},
		{"bad UTF-8", writeFile(t, "b.txt", "ok\n\nbad \xff byte\n"), FormatText, "",
			"%s:3: not valid UTF-8"},
		{"unknown format", writeFile(t, "c.csv", "x"), "csv", "",
			`%s: unknown document format "csv" (want "text" or "jsonl")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadDocuments(tt.path, tt.format, tt.field)
			want := strings.ReplaceAll(tt.want, "%s", tt.path)
			if err == nil || err.Error() != want {
				t.Errorf("error = %v, want %s", err, want)
			}
		})
	}

	missing := filepath.Join(t.TempDir(), "missing.txt")
	_, err := ReadDocuments(missing, FormatText, "")
	if err == nil || !strings.Contains(err.Error(), missing) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: error = %v, want a not-exist error naming %s", err, missing)
	}
}

func TestReadDocumentsTinyStories(t *testing.T) {
	path := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	docs, err := ReadDocuments(path, FormatText, "")
	if err != nil {
		t.Fatal(err)
	}
	// Counted independently: paragraphs between whitespace-only lines.
	if len(docs) != 4302 {
		t.Fatalf("got %d documents, want 4302", len(docs))
	}
	if !strings.HasPrefix(docs[0], `Spot. Spot saw the shiny car and said, "Wow, Kitty,`) ||
		!strings.HasSuffix(docs[0], `I polish it every day."`) {
		t.Errorf("first document = %q", docs[0])
	}
	if !strings.HasPrefix(docs[1], "After playing with the car, Kitty and Spot felt thirsty.") {
		t.Errorf("second document = %q", docs[1])
	}
	if !strings.HasSuffix(docs[len(docs)-1], "He knew he would always remember his special performance.") {
		t.Errorf("last document = %q", docs[len(docs)-1])
	}
	multiline := 0
	for i, d := range docs {
		if d == "" || d != strings.TrimSpace(d) {
			t.Fatalf("document %d is empty or untrimmed: %q", i, d)
		}
		if strings.Contains(d, "\n") {
			multiline++
		}
	}
	if multiline != 18 {
		t.Errorf("%d documents span several lines, want 18", multiline)
	}
}

func TestReadDocumentsGSM8K(t *testing.T) {
	path := shareddata.Path(t, "text", "gsm8k", "test.jsonl")
	docs, err := ReadDocuments(path, FormatJSONL, "question")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1319 {
		t.Fatalf("got %d documents, want 1319", len(docs))
	}
	if !strings.HasPrefix(docs[0], "Janet\u2019s ducks lay 16 eggs per day.") {
		t.Errorf("first document = %q", docs[0])
	}
	if !strings.HasSuffix(docs[len(docs)-1], "as equally, how many slices can each of them have?") {
		t.Errorf("last document = %q", docs[len(docs)-1])
	}
}

func TestReadDocumentsBoolQWrongField(t *testing.T) {
	path := shareddata.Path(t, "text", "boolq", "boolq_balanced_2474.jsonl")
	_, err := ReadDocuments(path, FormatJSONL, "answer")
	want := path + `:1: field "answer" is a boolean, not a string`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestSplit(t *testing.T) {
	docs := make([]string, 100)
	for i := range docs {
		docs[i] = string(rune('a' + i%26))
	}
	tests := []struct {
		from, to   float64
		start, end int
	}{
		{0, 1, 0, 100},
		{0, 0.29, 0, 29}, // 0.29·100 is 28.999999999999996 in float64
		{0.29, 0.57, 29, 57},
		{0.9, 1, 90, 100},
		{0.333, 0.5, 33, 50},
		{0.5, 0.5, 50, 50},
	}
	for _, tt := range tests {
		got := Split(docs, tt.from, tt.to)
		if len(got) != tt.end-tt.start || (len(got) > 0 && &got[0] != &docs[tt.start]) {
			t.Errorf("Split(%v, %v) = %d docs, want docs[%d:%d]", tt.from, tt.to, len(got), tt.start, tt.end)
		}
	}

	// floor, not round: 7 documents split at one half give 3 and 4.
	seven := docs[:7]
	if a, b := Split(seven, 0, 0.5), Split(seven, 0.5, 1); len(a) != 3 || len(b) != 4 || &b[0] != &seven[3] {
		t.Errorf("split of 7 at 0.5: %d + %d docs, want 3 + 4", len(a), len(b))
	}

	for _, bad := range [][2]float64{{-0.1, 0.5}, {0.6, 0.5}, {0, 1.01}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Split(%v, %v) did not panic", bad[0], bad[1])
				}
			}()
			Split(docs, bad[0], bad[1])
		}()
	}
}

// byteEncoder is a stand-in tokenizer: BOS 1, EOS 2, byte b as b+3.
type byteEncoder struct{}

func (byteEncoder) Encode(text string, bos, eos bool) []int32 {
	var ids []int32
	if bos {
		ids = append(ids, 1)
	}
	for i := 0; i < len(text); i++ {
		ids = append(ids, int32(text[i])+3)
	}
	if eos {
		ids = append(ids, 2)
	}
	return ids
}

func TestStream(t *testing.T) {
	got := Stream([]string{"ab", "", "c"}, byteEncoder{})
	want := []int32{1, 'a' + 3, 'b' + 3, 1, 1, 'c' + 3}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream (-want +got):\n%s", diff)
	}
	if got := Stream(nil, byteEncoder{}); len(got) != 0 {
		t.Errorf("stream of no documents = %v", got)
	}
}
