package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"lrmc/compiler"
	"lrmc/internal/shareddata"
	"lrmc/internal/version"
)

// `lrmc --version`, `lrmc -v` and `lrmc version` print the one version
// constant, the one provenance.json records.
func TestVersionFlag(t *testing.T) {
	want := "lrmc " + version.Version + "\n"
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		code, out, errs := lrmc(t, args...)
		if code != 0 || out != want {
			t.Errorf("lrmc %v: exit %d, %q (stderr %q); want %q", args, code, out, errs, want)
		}
	}
}

// `lrmc schema` and `lrmc help recipe` print the schema's fields as the
// compiler generates them from the embedded schema.
func TestSchemaCommand(t *testing.T) {
	var want bytes.Buffer
	if err := compiler.WriteSchema(&want); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"schema"}, {"help", "recipe"}} {
		code, out, errs := lrmc(t, args...)
		if code != 0 || out != want.String() {
			t.Errorf("lrmc %v: exit %d, stderr %q, output differs from compiler.WriteSchema:\n%.400s", args, code, errs, out)
		}
	}
	if !strings.Contains(want.String(), "\ncalibration.seqLen: int & >=2\n") {
		t.Errorf("schema lacks calibration.seqLen:\n%.2000s", want.String())
	}
}

// complete asks root for the completions of args, as the shell script does.
func complete(t *testing.T, root *cobra.Command, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(append([]string{cobra.ShellCompRequestCmd}, args...))
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	return lines[:len(lines)-1] // the last line is the directive
}

// Flag values complete: --run with the recipe's run names (also for a
// recipe with mistakes), a flag whose usage lists its values with those,
// and RECIPE arguments with .cue files; `lrmc completion bash` writes a
// script.
func TestCompletion(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.cue")
	if err := os.WriteFile(recipe, []byte("runs: {\"shortgpt-1\": {}, sleb: {}, \"shortgpt-2\": prune: bogus: 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := &cobra.Command{Use: "lrmc"}
	preview := &cobra.Command{Use: "preview RECIPE", Run: func(*cobra.Command, []string) {}}
	preview.Flags().String("run", "", "the run to preview")
	preview.Flags().String("format", "text", "output format: text, json or markdown")
	preview.Flags().String("output", "", "directory (default: the recipe's output.dir)")
	root.AddCommand(preview)
	completeFlags(root)

	if got, want := complete(t, root, "preview", recipe, "--run", "short"), []string{"shortgpt-1", "shortgpt-2"}; !slices.Equal(got, want) {
		t.Errorf("--run completes %q, want %q", got, want)
	}
	if got, want := complete(t, root, "preview", recipe, "--format", ""), []string{"text", "json", "markdown"}; !slices.Equal(got, want) {
		t.Errorf("--format completes %q, want %q", got, want)
	}
	if got := complete(t, root, "preview", recipe, "--output", ""); len(got) != 0 {
		t.Errorf("--output (prose after a colon) completes %q, want nothing", got)
	}
	if got := complete(t, root, "preview", ""); !slices.Equal(got, []string{"cue"}) {
		t.Errorf("RECIPE completes %q, want the .cue extension filter", got)
	}

	code, out, _ := lrmc(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "__start_lrmc") {
		t.Errorf("completion bash: exit %d, no script:\n%.200s", code, out)
	}
	code, out, _ = lrmc(t, cobra.ShellCompRequestCmd, "apply", recipe, "--progress", "")
	if code != 0 || !strings.HasPrefix(out, "auto\ntty\nplain\njson\n") {
		t.Errorf("apply --progress completes:\n%s", out)
	}
}

func TestFlagChoices(t *testing.T) {
	for usage, want := range map[string][]string{
		"progress display: auto, tty, plain or json":     {"auto", "tty", "plain", "json"},
		"log level: trace, debug, info, warn, error":     {"trace", "debug", "info", "warn", "error"},
		"dtype: float32 or bfloat16":                     {"float32", "bfloat16"},
		"directory (default: the first recipe's output)": nil,
		"soft limit on memory (e.g. 8GiB)":               nil,
		"cache directory: default":                       nil,
	} {
		if got := flagChoices(usage); !slices.Equal(got, want) {
			t.Errorf("flagChoices(%q) = %q, want %q", usage, got, want)
		}
	}
}

// An evaluation that reads a copy of the calibration file passes vet (it
// is another file) and is rejected by plan, which compares contents, at
// the recipe's position of the evaluation's split.
func TestPlanOverlapByContentHasPosition(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	dir := t.TempDir()
	b, err := os.ReadFile(text)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "copy.txt"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "r.cue")
	src := "model: path: \"" + model + "\"\n" +
		"calibration: {data: path: \"" + text + "\", samples: 4, seqLen: 32}\n" +
		"dense: false\n" +
		"runs: x: {\n" +
		"\tprune: {paradigm: \"depth\", method: \"shortgpt\", remove: 1}\n" +
		"\teval: [{task: \"perplexity\", data: {path: \"copy.txt\", split: {from: 0.5, to: 1}}, seqLen: 32}]\n" +
		"}\n"
	if err := os.WriteFile(recipe, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := lrmc(t, "vet", recipe); code != 0 {
		t.Fatalf("vet: exit %d: %s", code, errs)
	}
	code, _, errs := lrmc(t, "--cache", filepath.Join(dir, "cache"), "plan", recipe)
	want := regexp.MustCompile(regexp.QuoteMeta(recipe) + `:6:\d+: runs."x".eval\[0\].data.split: evaluation documents \[0.5, 1\) overlap`)
	if code == 0 || !want.MatchString(errs) {
		t.Errorf("plan: exit %d, stderr:\n%s\nwant a match of %s", code, errs, want)
	}
}
