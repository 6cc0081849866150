// Command reliability is lrmc's crash and damage campaign: it runs the lrmc
// binary as a user would and attacks it the ways real machines do — kill -9
// at random moments, damaged cache files, a disk that fills up — and checks
// after each attack that lrmc either produces exactly the outputs of an
// undisturbed run or stops with a clear error, and never panics.
//
//	go run ./bench/reliability                       # 30 kills, 30 damage trials, small disks when mountable
//	go run ./bench/reliability -kills 5 -damage 5 -disks ""
//
// It prints one table row per attack: trials, detected (lrmc said
// something was wrong: a corrupt entry recomputed, a damaged cache named
// with its way out, a full disk), recovered (the outputs in the end equal
// the undisturbed run's, byte for byte), wrong outputs (an apply exited 0
// with different outputs: must be 0), refused clearly (on a disk too small
// for the cache, apply stopped with "no space left" before it ran anything)
// and panics (a Go panic, SIGBUS or
// fatal error on stderr: must be 0). It exits 1 when a wrong output, a panic
// or an unrecovered trial was seen.
//
// The recipe is the README's depth sweep on the real stories260K model,
// written into a scratch directory with absolute data paths, with llama2c
// and GGUF exports so that kills also land while outputs are written; a
// second, short LoRA recovery recipe puts kills inside training, where
// checkpoints must resume bit-identically.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"lrmc/executor"
	"lrmc/internal/shareddata"
)

func main() {
	kills := flag.Int("kills", 30, "kill -9 trials (split between the depth and the recovery recipe)")
	damage := flag.Int("damage", 30, "cache damage trials")
	disks := flag.String("disks", "6m,12m,24m", "tmpfs sizes to run the cache on (comma-separated; empty to skip; skipped when mount is not permitted)")
	seed := flag.Uint64("seed", 1, "seed for kill times and damage sites")
	bin := flag.String("lrmc", "", "the lrmc binary (default: go build ./cmd/lrmc)")
	keep := flag.Bool("keep", false, "keep the scratch directory")
	verbose := flag.Bool("v", false, "print every trial")
	flag.Parse()
	if err := run(*kills, *damage, *disks, *seed, *bin, *keep, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

// tally is one row of the summary table.
type tally struct {
	name                                                       string
	trials, detected, recovered, refused, wrong, panics, leaks int
}

type campaign struct {
	bin, work string
	rng       *rand.Rand
	verbose   bool
	log       io.Writer
}

// recipeSet is one recipe with the outputs of its undisturbed run.
type recipeSet struct {
	name, path, out string
	golden          map[string]string // output file (relative) -> sha256
	seconds         float64           // undisturbed apply on an empty cache
	cache           string            // the cache that run filled
}

func run(kills, damage int, disks string, seed uint64, bin string, keep, verbose bool) error {
	data := shareddata.Find()
	if data == "" {
		return errors.New("shared data not found (set LRMC_DATA)")
	}
	work, err := os.MkdirTemp("", "lrmc-reliability-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("scratch:", work)
	} else {
		defer os.RemoveAll(work)
	}
	if bin == "" {
		bin = filepath.Join(work, "lrmc")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/lrmc")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	c := &campaign{bin: bin, work: work, rng: rand.New(rand.NewPCG(seed, 0x1234)), verbose: verbose, log: os.Stdout}

	depth, err := c.prepare("depth", depthRecipe(data))
	if err != nil {
		return err
	}
	recovery, err := c.prepare("recovery", recoveryRecipe(data))
	if err != nil {
		return err
	}

	var rows []tally
	rows = append(rows, c.killTrials("kill -9 (depth sweep)", depth, kills-kills/3))
	rows = append(rows, c.killTrials("kill -9 (LoRA recovery)", recovery, kills/3))
	rows = append(rows, c.damageTrials("cache file damage", depth, damage))
	if disks != "" {
		row, err := c.diskTrials("small disk (tmpfs)", depth, strings.Split(disks, ","))
		if err != nil {
			fmt.Fprintln(os.Stderr, "reliability: small-disk trials skipped:", err)
		} else {
			rows = append(rows, row)
		}
	}

	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\ttrials\tdetected\trecovered\trefused clearly\twrong outputs\tpanics\tleftover temp files")
	bad := false
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.name, r.trials, r.detected, r.recovered, r.refused, r.wrong, r.panics, r.leaks)
		bad = bad || r.wrong > 0 || r.panics > 0 || r.recovered+r.refused < r.trials || r.leaks > 0
	}
	tw.Flush()
	if bad {
		return errors.New("a trial ended with wrong outputs, a panic, leftovers or no recovery")
	}
	return nil
}

// prepare writes a recipe into the scratch directory and records the outputs
// and duration of its undisturbed apply on an empty cache.
func (c *campaign) prepare(name, text string) (*recipeSet, error) {
	dir := filepath.Join(c.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rs := &recipeSet{name: name, path: filepath.Join(dir, "recipe.cue"), out: filepath.Join(dir, "out"),
		cache: filepath.Join(c.work, name+"-golden-cache")}
	if err := os.WriteFile(rs.path, []byte(text), 0o644); err != nil {
		return nil, err
	}
	t0 := time.Now()
	r := c.lrmc(rs.cache, 0, "apply", "--progress=plain", rs.path)
	rs.seconds = time.Since(t0).Seconds()
	if r.code != 0 {
		return nil, fmt.Errorf("undisturbed apply of the %s recipe failed (exit %d):\n%s", name, r.code, r.stderr)
	}
	var err error
	if rs.golden, err = digestTree(rs.out); err != nil {
		return nil, err
	}
	fmt.Fprintf(c.log, "%s recipe: undisturbed apply %.1f s, %d output files\n", name, rs.seconds, len(rs.golden))
	return rs, nil
}

// result is one lrmc invocation.
type result struct {
	code           int
	killed         bool
	stdout, stderr string
}

// panicked tells whether the process died of a Go panic, a fault or a
// runtime fatal error rather than returning an error.
func (r result) panicked() bool {
	for _, s := range []string{"panic:", "SIGBUS", "SIGSEGV", "fatal error:", "goroutine "} {
		if strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s) {
			return true
		}
	}
	return false
}

// lrmc runs the binary on cache; killAfter > 0 sends SIGKILL at that time
// unless it has exited by then.
func (c *campaign) lrmc(cache string, killAfter time.Duration, args ...string) result {
	args = append([]string{"--cache", cache}, args...)
	cmd := exec.Command(c.bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.Env = append(os.Environ(), "LRMC_CACHE="+cache)
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	var timer *time.Timer
	killed := make(chan bool, 1)
	if killAfter > 0 {
		timer = time.AfterFunc(killAfter, func() {
			killed <- cmd.Process.Signal(syscall.SIGKILL) == nil
		})
	}
	err := cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		}
	default:
		r.code, r.stderr = -1, err.Error()
	}
	select {
	case k := <-killed:
		r.killed = r.killed || k
	default:
	}
	return r
}

// killTrials kills an apply on a fresh cache at a uniformly random moment of
// its undisturbed duration, then applies again to completion: the outputs
// must equal the undisturbed run's and no temporary file may remain.
func (c *campaign) killTrials(name string, rs *recipeSet, n int) tally {
	t := tally{name: name}
	for i := 0; i < n; i++ {
		t.trials++
		cache := filepath.Join(c.work, fmt.Sprintf("%s-kill-%d", rs.name, i))
		at, first := c.killedApply(rs, cache)
		// A second kill half of the time, in the resumed run.
		var second result
		if c.rng.IntN(2) == 0 {
			at2 := time.Duration(c.rng.Float64() * rs.seconds * float64(time.Second) / 2)
			second = c.lrmc(cache, at2, "apply", "--progress=plain", rs.path)
		}
		last := c.lrmc(cache, 0, "apply", "--progress=plain", rs.path)
		note := ""
		switch {
		case first.panicked() || second.panicked() || last.panicked():
			t.panics++
			note = "PANIC"
		case last.code != 0:
			note = "final apply failed: " + firstLine(last.stderr)
		default:
			if strings.Contains(last.stdout+last.stderr, "resum") || strings.Contains(last.stdout+last.stderr, "corrupt") {
				t.detected++
			}
			note = c.judge(&t, rs)
		}
		if leaks := tempLeftovers(rs.out); len(leaks) > 0 {
			t.leaks++
			note += " leftovers: " + strings.Join(leaks, " ")
		}
		c.trace("%s #%d: kill at %v (killed=%v): %s", name, i, at.Round(time.Millisecond), first.killed, note)
		os.RemoveAll(cache)
	}
	return t
}

// killedApply starts an apply of rs on a fresh cache and kills it at a
// random moment of its duration. The machine's load changes that duration,
// so an apply that finished before its kill is run again on a fresh cache,
// killed within the time it took, until a kill lands (a few tries).
func (c *campaign) killedApply(rs *recipeSet, cache string) (time.Duration, result) {
	span := rs.seconds
	var at time.Duration
	var r result
	for try := 0; try < 4; try++ {
		os.RemoveAll(cache)
		os.RemoveAll(rs.out)
		at = time.Duration(c.rng.Float64() * span * float64(time.Second))
		t0 := time.Now()
		r = c.lrmc(cache, at, "apply", "--progress=plain", rs.path)
		if r.killed {
			break
		}
		span = min(span, time.Since(t0).Seconds())
	}
	return at, r
}

// damage modes applied to one file of the cache's Badger directory or its
// value files.
var damageModes = []string{"flip bytes", "truncate", "zero 4 KiB", "delete", "append garbage"}

// damageTrials damages one file of a finished cache and applies again. An
// apply that exits 0 must give the undisturbed outputs; one that fails must
// say what is damaged and how out, and `cache verify --repair` followed by
// apply must then give the undisturbed outputs.
func (c *campaign) damageTrials(name string, rs *recipeSet, n int) tally {
	t := tally{name: name}
	for i := 0; i < n; i++ {
		t.trials++
		cache := filepath.Join(c.work, fmt.Sprintf("damage-%d", i))
		// Every other trial damages a cache that a kill left mid-write
		// (live memtable logs, a value log being appended), the others a
		// cache closed cleanly.
		origin := "closed"
		if i%2 == 1 {
			origin = "killed"
			if _, r := c.killedApply(rs, cache); r.panicked() {
				t.panics++
			}
		} else if err := copyTree(rs.cache, cache); err != nil {
			c.trace("%s #%d: copy: %v", name, i, err)
			continue
		}
		files := cacheFiles(cache)
		if len(files) == 0 {
			c.trace("%s #%d: no files to damage", name, i)
			continue
		}
		victim := files[c.rng.IntN(len(files))]
		mode := damageModes[c.rng.IntN(len(damageModes))]
		if err := c.damage(victim, mode); err != nil {
			c.trace("%s #%d: damage: %v", name, i, err)
			continue
		}
		os.RemoveAll(rs.out)
		verify := c.lrmc(cache, 0, "cache", "verify")
		apply := c.lrmc(cache, 0, "apply", "--progress=plain", rs.path)
		note := ""
		panicked := verify.panicked() || apply.panicked()
		// Detection: verify or apply dropped a corrupt entry, or a command
		// refused the damaged cache.
		said := strings.Contains(verify.stdout+verify.stderr, "dropping corrupt") ||
			strings.Contains(apply.stdout+apply.stderr, "corrupt") || verify.code != 0 || apply.code != 0
		if apply.code == 0 {
			note = "apply " + c.judge(&t, rs)
		} else {
			named := strings.Contains(apply.stderr, "repair") || strings.Contains(apply.stderr, "cache reset")
			repair := c.lrmc(cache, 0, "cache", "verify", "--repair")
			again := c.lrmc(cache, 0, "apply", "--progress=plain", rs.path)
			panicked = panicked || repair.panicked() || again.panicked()
			note = fmt.Sprintf("apply exit %d (way out named: %v): %s; repair exit %d", apply.code, named, firstLine(apply.stderr), repair.code)
			if again.code == 0 {
				note += "; after repair " + c.judge(&t, rs)
			} else {
				note += "; after repair apply failed: " + firstLine(again.stderr)
			}
		}
		if said {
			t.detected++
		}
		if panicked {
			t.panics++
			note = "PANIC " + note
		}
		c.trace("%s #%d: %s %s of a %s cache: %s", name, i, mode, strings.TrimPrefix(victim, cache+"/"), origin, note)
		os.RemoveAll(cache)
	}
	return t
}

func (c *campaign) damage(path, mode string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	size := st.Size()
	switch mode {
	case "delete":
		return os.Remove(path)
	case "truncate":
		return os.Truncate(path, c.rng.Int64N(size+1))
	case "append garbage":
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, 1+c.rng.IntN(8192))
		for j := range b {
			b[j] = byte(c.rng.Uint32())
		}
		_, err = f.Write(b)
		return err
	}
	if size == 0 {
		return os.Truncate(path, 0)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if mode == "zero 4 KiB" {
		off := c.rng.Int64N(size)
		n := min(4096, size-off)
		_, err = f.WriteAt(make([]byte, n), off)
		return err
	}
	for j := 0; j < 1+c.rng.IntN(8); j++ {
		off := c.rng.Int64N(size)
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		b[0] ^= byte(1 << c.rng.IntN(8))
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return nil
}

// diskTrials puts the cache on a tmpfs of each size: lrmc must finish with
// the undisturbed outputs (a result it cannot store is still a good result)
// or stop with a "no space left" error; never fault. A second apply on the
// same full disk must behave the same way.
func (c *campaign) diskTrials(name string, rs *recipeSet, sizes []string) (tally, error) {
	t := tally{name: name}
	for i, size := range sizes {
		mnt := filepath.Join(c.work, fmt.Sprintf("disk-%d", i))
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			return t, err
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
			return t, fmt.Errorf("mount tmpfs: %v: %s", err, bytes.TrimSpace(out))
		}
		for pass := 0; pass < 2; pass++ {
			t.trials++
			os.RemoveAll(rs.out)
			r := c.lrmc(filepath.Join(mnt, "cache"), 0, "apply", "--progress=plain", rs.path)
			verify := c.lrmc(filepath.Join(mnt, "cache"), 0, "cache", "verify")
			note := ""
			full := strings.Contains(r.stderr, "no space left")
			if full {
				t.detected++
			}
			switch {
			case r.panicked() || verify.panicked():
				t.panics++
				note = "PANIC " + firstLine(r.stderr)
			case r.code == 0:
				note = c.judge(&t, rs)
			case full:
				// A clear refusal is an acceptable end on a disk too small
				// for the cache's headroom.
				t.refused++
				note = "refused: " + firstLine(r.stderr)
			default:
				note = fmt.Sprintf("exit %d: %s", r.code, firstLine(r.stderr))
			}
			c.trace("%s %s pass %d: %s (no space reported: %v)", name, size, pass, note, full)
		}
		exec.Command("umount", mnt).Run()
	}
	return t, nil
}

// judge compares the outputs with the undisturbed run's, counts the trial
// as recovered or wrong, and says which.
func (c *campaign) judge(t *tally, rs *recipeSet) string {
	if same, diff := c.sameOutputs(rs); !same {
		t.wrong++
		return "WRONG OUTPUT " + diff
	}
	t.recovered++
	return "ok"
}

// sameOutputs compares the output tree with the undisturbed run's.
func (c *campaign) sameOutputs(rs *recipeSet) (bool, string) {
	got, err := digestTree(rs.out)
	if err != nil {
		return false, err.Error()
	}
	for p, d := range rs.golden {
		if got[p] != d {
			return false, p
		}
	}
	for p := range got {
		if _, ok := rs.golden[p]; !ok {
			return false, "extra " + p
		}
	}
	return true, ""
}

func (c *campaign) trace(f string, a ...any) {
	if c.verbose || strings.Contains(fmt.Sprintf(f, a...), "PANIC") || strings.Contains(fmt.Sprintf(f, a...), "WRONG") {
		fmt.Fprintf(c.log, f+"\n", a...)
	}
}

// digestTree maps each regular file under dir (relative path) to its sha256.
func digestTree(dir string) (map[string]string, error) {
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	return m, err
}

// tempLeftovers lists files and directories under dir whose names mark them
// as lrmc's unfinished writes (a leading dot: ".model.bin.tmp123", staging).
func tempLeftovers(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		// The output state file is apply's own record (executor.StateFile),
		// not a temporary; every other dot file is.
		if err == nil && p != dir && strings.HasPrefix(d.Name(), ".") && p != filepath.Join(dir, executor.StateFile) {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// cacheFiles lists the regular files of the cache's database and its value
// files (blobs/), sorted.
func cacheFiles(cache string) []string {
	var out []string
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(cache, p)
		if err == nil && d.Type().IsRegular() && (strings.Contains(rel, "badger") || strings.HasPrefix(rel, "blobs/")) {
			out = append(out, p)
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	// The last line of an error is the one that says what failed.
	lines := strings.Split(s, "\n")
	l := lines[len(lines)-1]
	if len(l) > 160 {
		l = l[:160] + "…"
	}
	return l
}

// recipeHead is the model, calibration and held-out perplexity shared by
// the campaign's recipes, with absolute data paths.
func recipeHead(data string, samples, seqLen int) string {
	text := filepath.Join(data, "text/tinystories/tinystories_val.txt")
	return fmt.Sprintf(`model: path: %q
calibration: {
	data: {path: %q, format: "text", split: {from: 0, to: 0.9}}
	samples: %d
	seqLen:  %d
	seed:    1
}
eval: [{
	task: "perplexity"
	data: {path: %q, format: "text", split: {from: 0.9, to: 1.0}}
	samples: %d
	seqLen:  %d
}]
`, filepath.Join(data, "models/stories260K/stories260K.bin"), text, samples, seqLen, text, samples, seqLen)
}

// depthRecipe is the README's depth sweep with GGUF exports added, so that
// kills land in output writing as well.
func depthRecipe(data string) string {
	return recipeHead(data, 64, 256) + `runs: {
	"shortgpt-1": prune: {paradigm: "depth", method: "shortgpt", remove: 1}
	"shortgpt-2": prune: {paradigm: "depth", method: "shortgpt", remove: 2}
	"sleb-1":     prune: {paradigm: "depth", method: "sleb", remove: 1}
}
dense: true
output: {dir: "out", formats: ["llama2c", "gguf"]}
`
}

// recoveryRecipe is a short LoRA recovery that checkpoints often, so kills
// land between and inside checkpoints.
func recoveryRecipe(data string) string {
	return recipeHead(data, 16, 128) + fmt.Sprintf(`prune: {paradigm: "depth", method: "shortgpt", remove: 2}
runs: "shortgpt-2-lora": recovery: {
	method: "lora"
	data: {path: %q, format: "text", split: {from: 0, to: 0.9}}
	steps: 96
	batch: 4
	seqLen: 64
	lr: 3e-3
	rank: 4
	alpha: 8
	targets: ["q", "v"]
	checkpointEvery: 8
	seed: 1
}
dense: false
output: {dir: "out", formats: ["llama2c"]}
`, filepath.Join(data, "text/tinystories/tinystories_val.txt"))
}
