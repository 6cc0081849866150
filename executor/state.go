package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"lrmc/internal/fsync"
	"lrmc/planner"
)

// StateFile is the output directory's record of what apply wrote there,
// like terraform's state: per run directory, the recipe that wrote it, the
// entries it wrote, and the nodes behind them. Plan compares a recipe with
// it to say why a node runs; apply uses it to remove the directory of a run
// taken out of the recipe, and never removes one it has no record of.
const StateFile = ".lrmc-state.json"

// stateVersion is bumped when State's layout changes; a file of another
// version is treated as no record (nothing is removed on its word).
const stateVersion = 1

// State is the content of StateFile.
type State struct {
	Version int                  `json:"version"`
	Runs    map[string]RunRecord `json:"runs"`
}

// RunRecord is one run as last written. The recipe-wide nodes (results)
// are recorded under the run name "".
type RunRecord struct {
	// Recipe is the absolute path of the recipe that wrote the run.
	Recipe string `json:"recipe"`
	// Files are the entries lrmc wrote at the top of the run's directory.
	Files []string     `json:"files,omitempty"`
	Nodes []NodeRecord `json:"nodes"`
}

// NodeRecord is a node of a run, at its position: its op and its ordinal
// among the run's nodes of that op, in graph order ("capture.block#3").
type NodeRecord struct {
	Pos     string          `json:"pos"`
	Key     string          `json:"key"`
	Version int             `json:"version"`
	Label   string          `json:"label"`
	Params  json.RawMessage `json:"params"`
	Inputs  []string        `json:"inputs,omitempty"`
}

// ReadState reads outDir's state; a missing file, or one of another
// version, is an empty state.
func ReadState(outDir string) (*State, error) {
	st := &State{Version: stateVersion, Runs: map[string]RunRecord{}}
	b, err := os.ReadFile(filepath.Join(outDir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("output state: %w", err)
	}
	var got State
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("output state %s: %w (remove the file to start a new record)", filepath.Join(outDir, StateFile), err)
	}
	if got.Version != stateVersion || got.Runs == nil {
		return st, nil
	}
	return &got, nil
}

func (s *State) write(outDir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(outDir, StateFile), append(b, '\n'))
}

// Positions names every node of run by its op and its ordinal among the
// run's nodes of that op, in g's (deterministic) order: the identity a
// node keeps across edits of the recipe that change its key.
func Positions(g *planner.Graph, run string) map[*planner.Node]string {
	pos := map[*planner.Node]string{}
	count := map[string]int{}
	for _, n := range g.Nodes {
		if !slices.Contains(n.Runs, run) {
			continue
		}
		pos[n] = n.Op + "#" + strconv.Itoa(count[n.Op])
		count[n.Op]++
	}
	return pos
}

// record describes run's nodes in g.
func record(g *planner.Graph, run, recipe string) RunRecord {
	rec := RunRecord{Recipe: recipe}
	pos := Positions(g, run)
	for _, n := range g.Nodes {
		p, ok := pos[n]
		if !ok {
			continue
		}
		nr := NodeRecord{Pos: p, Key: n.Key.String(), Version: n.Version, Label: n.Label, Params: n.Params}
		for _, in := range n.Inputs {
			nr.Inputs = append(nr.Inputs, in.Key.String())
		}
		rec.Nodes = append(rec.Nodes, nr)
	}
	return rec
}

// runDirs returns the run directories g's outputs write, each with the
// entries it writes at its top, sorted.
func runDirs(g *planner.Graph) map[string][]string {
	dirs := map[string][]string{}
	for _, o := range g.Outputs {
		name, rest, nested := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
		if !nested && !o.Dir {
			continue
		}
		first, _, _ := strings.Cut(rest, "/")
		if first != "" && !slices.Contains(dirs[name], first) {
			dirs[name] = append(dirs[name], first)
		}
		if _, ok := dirs[name]; !ok {
			dirs[name] = nil
		}
	}
	for _, f := range dirs {
		sort.Strings(f)
	}
	return dirs
}

// SaveState records, after g's outputs were written, every run directory
// g wrote and the recipe-wide nodes, keeping the records of other runs
// (a run that failed keeps the record of its last written outputs). The
// file is replaced atomically.
func SaveState(g *planner.Graph, recipe string) error {
	st, err := ReadState(g.OutDir)
	if err != nil {
		return err
	}
	recipe = absPath(recipe)
	for name, files := range runDirs(g) {
		rec := record(g, name, recipe)
		rec.Files = files
		st.Runs[name] = rec
	}
	if g.Results != nil {
		st.Runs[""] = record(g, "", recipe)
	}
	if err := st.write(g.OutDir); err != nil {
		return fmt.Errorf("output state: %w", err)
	}
	return nil
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// StaleDir is a directory of the output directory that belongs to no run
// of the recipe any longer.
type StaleDir struct {
	Run  string
	Path string
	// Remove says lrmc wrote it for this recipe and it holds only what
	// lrmc wrote, so apply removes it; otherwise Reason says why it stays.
	Remove bool
	Reason string
}

// FindStale lists the run directories under g.OutDir that the recipe's
// runs (g is the plan of the whole recipe) no longer write: those recorded
// in the state as written by this recipe, and any other directory that
// looks like a run's outputs (a metrics.json or provenance.json at its
// top), which is reported but never removed.
func FindStale(g *planner.Graph, recipe string) ([]StaleDir, error) {
	st, err := ReadState(g.OutDir)
	if err != nil {
		return nil, err
	}
	recipe = absPath(recipe)
	current := runDirs(g)
	var stale []StaleDir
	seen := map[string]bool{}
	names := make([]string, 0, len(st.Runs))
	for name := range st.Runs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		rec := st.Runs[name]
		if _, ok := current[name]; ok || name == "" || !filepath.IsLocal(name) || strings.Contains(name, "/") {
			continue
		}
		seen[name] = true
		path := filepath.Join(g.OutDir, name)
		sd := StaleDir{Run: name, Path: path}
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Removed already (by hand, or by an apply killed before it
			// updated the record): only the record goes.
			sd.Remove = true
		case err != nil:
			return nil, fmt.Errorf("output %s: %w", path, err)
		case !fi.IsDir() || fi.Mode()&fs.ModeSymlink != 0:
			sd.Reason = "it is not a directory lrmc wrote (a file or a link now)"
		case rec.Recipe != recipe:
			sd.Reason = "it was written by " + rec.Recipe
		default:
			foreign, err := foreignEntries(path, rec.Files)
			if err != nil {
				return nil, err
			}
			if len(foreign) > 0 {
				sd.Reason = "it holds files lrmc did not write: " + strings.Join(foreign, ", ")
			} else {
				sd.Remove = true
			}
		}
		stale = append(stale, sd)
	}
	entries, err := os.ReadDir(g.OutDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("output directory %s: %w", g.OutDir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if _, ok := current[name]; ok || seen[name] || strings.HasPrefix(name, ".") || !e.IsDir() {
			continue
		}
		path := filepath.Join(g.OutDir, name)
		if looksLikeRun(path) {
			stale = append(stale, StaleDir{Run: name, Path: path, Reason: "lrmc has no record of writing it"})
		}
	}
	return stale, nil
}

func looksLikeRun(dir string) bool {
	for _, f := range []string{"metrics.json", "provenance.json"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// foreignEntries lists the entries at the top of dir that are not in
// written.
func foreignEntries(dir string, written []string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", dir, err)
	}
	var foreign []string
	for _, e := range entries {
		if !slices.Contains(written, e.Name()) {
			foreign = append(foreign, e.Name())
		}
	}
	return foreign, nil
}

// RemoveStale removes the stale directories marked Remove and drops their
// records. A directory is removed before its record, so an interruption
// leaves a record whose removal the next apply finishes.
func RemoveStale(outDir string, stale []StaleDir) error {
	var gone []string
	for _, sd := range stale {
		if !sd.Remove {
			continue
		}
		if err := os.RemoveAll(sd.Path); err != nil {
			return fmt.Errorf("removing stale output %s: %w", sd.Path, err)
		}
		gone = append(gone, sd.Run)
	}
	if len(gone) == 0 {
		return nil
	}
	st, err := ReadState(outDir)
	if err != nil {
		return err
	}
	for _, name := range gone {
		delete(st.Runs, name)
	}
	if err := st.write(outDir); err != nil {
		return fmt.Errorf("output state: %w", err)
	}
	return fsync.Path(outDir)
}
