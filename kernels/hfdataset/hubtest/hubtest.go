// Package hubtest lays out datasets in a Hugging Face hub cache for tests:
// parquet files written with parquet-go's writer in the shapes of the
// hub's ARC and WinoGrande splits.
package hubtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// Choices is ARC's and OpenBookQA's choices column: a group of two lists.
type Choices struct {
	Text  []string `parquet:"text,list"`
	Label []string `parquet:"label,list"`
}

// ARC is a row of allenai/ai2_arc.
type ARC struct {
	ID        string  `parquet:"id"`
	Question  string  `parquet:"question"`
	Choices   Choices `parquet:"choices"`
	AnswerKey string  `parquet:"answerKey"`
}

// OpenBookQA is a row of allenai/openbookqa's main config.
type OpenBookQA struct {
	ID           string  `parquet:"id"`
	QuestionStem string  `parquet:"question_stem"`
	Choices      Choices `parquet:"choices"`
	AnswerKey    string  `parquet:"answerKey"`
}

// WinoGrande is a row of allenai/winogrande: answer is "1" or "2".
type WinoGrande struct {
	Sentence string `parquet:"sentence"`
	Option1  string `parquet:"option1"`
	Option2  string `parquet:"option2"`
	Answer   string `parquet:"answer"`
}

// Snapshot makes datasets--ORG--NAME/snapshots/<commit> in cache with
// refs/<branch> pointing at it, and returns the snapshot's directory.
func Snapshot(t testing.TB, cache, repo, branch, commit string) string {
	t.Helper()
	dir := filepath.Join(cache, "datasets--"+strings.ReplaceAll(repo, "/", "--"))
	snap := filepath.Join(dir, "snapshots", commit)
	must(t, os.MkdirAll(snap, 0o755))
	must(t, os.MkdirAll(filepath.Join(dir, "refs"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "refs", branch), []byte(commit), 0o644))
	return snap
}

// Write writes rows as a parquet file at path, making its directory.
func Write[T any](t testing.TB, path string, rows []T) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, parquet.WriteFile(path, rows))
}

// Blob writes rows as the hub does: the bytes in blobs/<name> and the
// snapshot's file a symbolic link to them.
func Blob[T any](t testing.TB, snap, rel string, rows []T) {
	t.Helper()
	blobs := filepath.Join(snap, "..", "..", "blobs")
	blob := filepath.Join(blobs, strings.ReplaceAll(rel, "/", "_"))
	Write(t, blob, rows)
	link := filepath.Join(snap, rel)
	must(t, os.MkdirAll(filepath.Dir(link), 0o755))
	target, err := filepath.Rel(filepath.Dir(link), blob)
	must(t, err)
	must(t, os.Symlink(target, link))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
