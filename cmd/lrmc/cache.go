package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/executor"
	"lrmc/planner"
)

func cacheCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect and maintain the result cache",
	}
	cmd.AddCommand(
		lsCmd(g),
		duCmd(g),
		gcCmd(g),
		verifyCmd(g),
		&cobra.Command{
			Use:   "reset",
			Short: "Delete every cache entry (and any database that verify --repair moved aside)",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				dir, opts := g.cacheOptions()
				if err := cache.Reset(dir, opts); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "cache %s emptied\n", dir)
				return nil
			},
		},
	)
	return cmd
}

func verifyCmd(g *globals) *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "verify [--repair]",
		Short: "Re-hash every entry; drop the corrupt ones (they are recomputed when next needed)",
		Long: `Verify re-hashes every entry and drops the corrupt ones. With --repair it also
recovers a cache whose database files are damaged: when Badger cannot open
them, the database is moved aside to badger.damaged-<time>, a fresh one
replaces it, and every entry that can still be read and verified is copied
over. It prints what it dropped and kept.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if repair {
				dir, opts := g.cacheOptions()
				rep, err := cache.Repair(dir, opts)
				if err != nil {
					return err
				}
				if rep.MovedAside != "" {
					cause := rep.Cause.Error()
					if de := (*cache.DamagedError)(nil); errors.As(rep.Cause, &de) {
						cause = de.Cause
						if de.File != "" {
							cause = de.File + ": " + cause
						}
					}
					fmt.Fprintf(out, "database damaged (%s)\nmoved it aside to %s (delete it when done)\n", cause, rep.MovedAside)
					if !rep.Salvaged {
						fmt.Fprintln(out, "nothing could be read from it: started an empty cache")
					}
				}
				for _, m := range rep.Dropped {
					fmt.Fprintf(out, "dropped %s %s %s\n", m.Key.Short(), m.Op, m.Name)
				}
				fmt.Fprintf(out, "%d entries kept, %d dropped\n", len(rep.Kept), len(rep.Dropped))
				return nil
			}
			s, err := g.openCache()
			if err != nil {
				return err
			}
			defer s.Close()
			bad, err := s.Verify()
			if err != nil {
				return err
			}
			for _, m := range bad {
				fmt.Fprintf(out, "dropped corrupt %s %s %s\n", m.Key.Short(), m.Op, m.Name)
			}
			n, _, err := s.Usage()
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%d entries verified, %d corrupt dropped\n", n, len(bad))
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "also recover a cache whose database files are damaged")
	return cmd
}

func gcCmd(g *globals) *cobra.Command {
	var maxSize, keep, olderThan string
	var dryRun, remote bool
	cmd := &cobra.Command{
		Use:   "gc [--max-size SIZE] [--keep-duration DURATION] [--dry-run] | gc --remote [--older-than DURATION] [--dry-run]",
		Short: "Evict entries no recipe needs, or least recently used ones down to a size",
		Long: `Without --max-size, gc evicts the reclaimable entries: those no recipe
run's latest apply needs (a run removed from its recipe, a recipe file that
is gone, results of settings since changed). With --max-size SIZE (e.g.
10GiB, 500MB) it evicts least recently used entries until the cache fits:
reclaimable ones first, then ones recipes still need (they are recomputed
when next applied). --keep-duration D (e.g. 24h, 7d) spares every entry
used within D. --dry-run prints what would be evicted and changes nothing.
The same policy enforces LRMC_CACHE_MAX after every apply, sparing what
that apply needs.

With --remote, gc sweeps the shared cache (--remote-cache) instead: it
removes what writers killed mid-write left there, never an entry: file://
temporary files (.tmp-*) and the S3 store's incomplete multipart uploads,
those last written more than --older-than ago (default 1h, so writers still
at work keep theirs). The local cache is not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if remote {
				if maxSize != "" || keep != "" {
					return errors.New("gc --remote sweeps the shared cache's leftovers; --max-size and --keep-duration are for the local cache")
				}
				age, err := parseDuration(olderThan)
				if err != nil {
					return fmt.Errorf("--older-than: %w", err)
				}
				return sweepRemote(cmd.OutOrStdout(), g.remote, age, dryRun)
			}
			if cmd.Flags().Changed("older-than") {
				return errors.New("--older-than is for gc --remote")
			}
			p := cache.Policy{MaxBytes: cache.NoSizeTarget, DryRun: dryRun}
			if maxSize != "" {
				var err error
				if p.MaxBytes, err = parseSize(maxSize); err != nil {
					return fmt.Errorf("--max-size: %w", err)
				}
			}
			if keep != "" {
				var err error
				if p.KeepDuration, err = parseDuration(keep); err != nil {
					return fmt.Errorf("--keep-duration: %w", err)
				}
			}
			open := g.openCache
			if dryRun {
				open = g.openCacheForReading
			}
			s, err := open()
			if err != nil {
				return err
			}
			defer s.Close()
			removed, err := s.Prune(p)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var freed int64
			for _, e := range removed {
				freed += e.Size
				if dryRun {
					fmt.Fprintf(out, "would evict %s %s %s %s\n", e.Key.Short(), e.Op, humanize.IBytes(uint64(e.Size)), e.Name)
				}
			}
			n, size, err := s.Usage()
			if err != nil {
				return err
			}
			if dryRun {
				fmt.Fprintf(out, "would evict %d entries (%s); %d entries, %s would remain\n",
					len(removed), humanize.IBytes(uint64(freed)), n-len(removed), humanize.IBytes(uint64(size-freed)))
				return nil
			}
			fmt.Fprintf(out, "evicted %d entries (%s); %d entries, %s remain\n",
				len(removed), humanize.IBytes(uint64(freed)), n, humanize.IBytes(uint64(size)))
			return nil
		},
	}
	cmd.Flags().StringVar(&maxSize, "max-size", "", "size to shrink the cache to (e.g. 10GiB, 500MB)")
	cmd.Flags().StringVar(&keep, "keep-duration", "", "spare entries used within this long (e.g. 24h, 7d)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be evicted; change nothing")
	cmd.Flags().BoolVar(&remote, "remote", false, "sweep crashed writers' leftovers from the shared cache (--remote-cache) instead")
	cmd.Flags().StringVar(&olderThan, "older-than", "1h", "with --remote: sweep leftovers last written longer ago than this (e.g. 1h, 2d)")
	return cmd
}

// sweepRemote removes (or with dryRun lists) the leftovers older than age
// in the shared cache at url, printing each and a total.
func sweepRemote(out io.Writer, url string, age time.Duration, dryRun bool) error {
	if url == "" {
		return errors.New("gc --remote: no shared cache: set --remote-cache or LRMC_REMOTE_CACHE")
	}
	r, err := cache.OpenRemote(url)
	if err != nil {
		return fmt.Errorf("--remote-cache: %w", err)
	}
	sw, ok := r.(cache.RemoteSweeper)
	if !ok {
		return fmt.Errorf("gc --remote: the shared cache %s cannot be swept", url)
	}
	left, err := sw.Sweep(time.Now().Add(-age), dryRun)
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	var bytes int64
	for _, l := range left {
		size := "size unknown"
		if l.Size >= 0 {
			bytes += l.Size
			size = humanize.IBytes(uint64(l.Size))
		}
		fmt.Fprintf(out, "%s %s %s (%s, last written %s)\n", verb, l.What, l.URL, size, l.Modified.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(out, "%s %d leftovers older than %s from %s (%s of temporary files)\n", verb, len(left), age, url, humanize.IBytes(uint64(bytes)))
	return err
}

// parseDuration reads Go durations ("36h", "90m") and whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("cannot read duration %q (try 24h, 90m or 7d)", s)
	}
	return d, nil
}

// entryJSON is an entry as cache ls --json writes it.
type entryJSON struct {
	Key         string         `json:"key"`
	Op          string         `json:"op"`
	Name        string         `json:"name"`
	Size        int64          `json:"size"`
	Created     time.Time      `json:"created"`
	LastUsed    time.Time      `json:"lastUsed"`
	Reclaimable bool           `json:"reclaimable"`
	UsedBy      []cache.RunRef `json:"usedBy"`
	WrittenBy   *cache.RunRef  `json:"writtenBy,omitempty"`
}

func lsCmd(g *globals) *cobra.Command {
	var opPattern, olderThan string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls [--op PATTERN] [--older-than DURATION] [--json]",
		Short: "List cache entries, most recently used first, with the recipes and runs that need them",
		Long: `ls lists the entries, most recently used first. RECLAIMABLE says that no
recipe run's latest apply needs the entry (gc evicts it first); RECIPE and
RUNS name the recipes and runs whose latest apply needs it, or, for a
reclaimable entry, the apply that wrote it. --op keeps entries whose op
matches PATTERN (a name or a glob: 'capture.*'); --older-than keeps those
last used longer ago than DURATION (24h, 7d). --json prints a JSON array.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var older time.Duration
			if olderThan != "" {
				var err error
				if older, err = parseDuration(olderThan); err != nil {
					return fmt.Errorf("--older-than: %w", err)
				}
			}
			if _, err := path.Match(opPattern, ""); err != nil {
				return fmt.Errorf("--op: bad pattern %q", opPattern)
			}
			s, err := g.openCacheForReading()
			if err != nil {
				return err
			}
			defer s.Close()
			entries, err := s.Entries()
			if err != nil {
				return err
			}
			now := time.Now()
			kept := entries[:0]
			for _, e := range entries {
				if ok, _ := path.Match(opPattern, e.Op); opPattern != "" && !ok {
					continue
				}
				if olderThan != "" && now.Sub(e.LastUsed) <= older {
					continue
				}
				kept = append(kept, e)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				list := make([]entryJSON, 0, len(kept))
				for _, e := range kept {
					j := entryJSON{Key: e.Key.String(), Op: e.Op, Name: e.Name, Size: e.Size, Created: e.Created.UTC(),
						LastUsed: e.LastUsed.UTC(), Reclaimable: e.Reclaimable(), UsedBy: e.UsedBy}
					if j.UsedBy == nil {
						j.UsedBy = []cache.RunRef{}
					}
					if e.Recipe != "" {
						j.WrittenBy = &cache.RunRef{Recipe: e.Recipe, Runs: e.Runs}
					}
					list = append(list, j)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tOP\tSIZE\tLAST USED\tRECLAIMABLE\tRECIPE\tRUNS\tNAME")
			for _, e := range kept {
				refs := e.UsedBy
				if e.Reclaimable() && e.Recipe != "" {
					refs = []cache.RunRef{{Recipe: e.Recipe, Runs: e.Runs}}
				}
				recipes, runs := joinRefs(refs)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", e.Key.Short(), e.Op, humanize.IBytes(uint64(e.Size)),
					e.LastUsed.Local().Format(time.DateTime), e.Reclaimable(), recipes, runs, e.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&opPattern, "op", "", "only entries whose op matches this name or glob")
	cmd.Flags().StringVar(&olderThan, "older-than", "", "only entries last used longer ago than this (e.g. 24h, 7d)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// joinRefs renders runs of recipes for a table: the recipes' file names
// and the runs ("recipe:run" when several recipes; "(recipe)" for an entry
// the recipe as a whole needs, such as its results), "-" for none.
func joinRefs(refs []cache.RunRef) (recipes, runs string) {
	if len(refs) == 0 {
		return "-", "-"
	}
	var rs, ns []string
	for _, r := range refs {
		rs = append(rs, filepath.Base(r.Recipe))
		if len(r.Runs) == 0 {
			ns = append(ns, filepath.Base(r.Recipe)+":(recipe)")
			if len(refs) == 1 {
				ns[len(ns)-1] = "(recipe)"
			}
		}
		for _, n := range r.Runs {
			if len(refs) > 1 {
				n = filepath.Base(r.Recipe) + ":" + n
			}
			ns = append(ns, n)
		}
	}
	return strings.Join(rs, ","), strings.Join(ns, ",")
}

// opUsage is one row of cache du.
type opUsage struct {
	Op               string `json:"op"`
	Entries          int    `json:"entries"`
	Bytes            int64  `json:"bytes"`
	ReclaimableCount int    `json:"reclaimableEntries"`
	Reclaimable      int64  `json:"reclaimableBytes"`
}

func duCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "du [--json]",
		Short: "Print the cache's size by op, and how much of it is reclaimable",
		Long: `du prints, per op and in total, the number of entries, their size and the
part that is reclaimable: entries no recipe run's latest apply needs, which
lrmc cache gc evicts. Sizes are the values' bytes; the disk holds slightly
more, plus garbage that gc has not yet returned.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := g.openCacheForReading()
			if err != nil {
				return err
			}
			defer s.Close()
			entries, err := s.Entries()
			if err != nil {
				return err
			}
			byOp := map[string]*opUsage{}
			total := opUsage{Op: "total"}
			for _, e := range entries {
				u := byOp[e.Op]
				if u == nil {
					u = &opUsage{Op: e.Op}
					byOp[e.Op] = u
				}
				for _, u := range []*opUsage{u, &total} {
					u.Entries++
					u.Bytes += e.Size
					if e.Reclaimable() {
						u.ReclaimableCount++
						u.Reclaimable += e.Size
					}
				}
			}
			rows := make([]opUsage, 0, len(byOp))
			for _, u := range byOp {
				rows = append(rows, *u)
			}
			// Largest first, as du -s | sort -h would show them.
			slices.SortFunc(rows, func(a, b opUsage) int {
				if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
					return c
				}
				return strings.Compare(a.Op, b.Op)
			})
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Ops   []opUsage `json:"ops"`
					Total opUsage   `json:"total"`
				}{rows, total})
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "OP\tENTRIES\tSIZE\tRECLAIMABLE")
			for _, u := range append(rows, total) {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", u.Op, u.Entries, humanize.IBytes(uint64(u.Bytes)), humanize.IBytes(uint64(u.Reclaimable)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// cacheMaxEnv names the cache size budget applies enforce.
const cacheMaxEnv = "LRMC_CACHE_MAX"

// cacheBudget reads LRMC_CACHE_MAX; ok is false when it is unset.
func cacheBudget() (limit int64, ok bool, err error) {
	v := os.Getenv(cacheMaxEnv)
	if strings.TrimSpace(v) == "" {
		return 0, false, nil
	}
	if limit, err = parseSize(v); err != nil {
		return 0, false, fmt.Errorf("%s: %w", cacheMaxEnv, err)
	}
	return limit, true, nil
}

// recordApply tells the cache what this apply needs, per run, before it
// runs: new entries name the recipe and runs that wrote them, and the
// recipe's apply record (which gc and du read) is replaced by this one.
func (s *session) recordApply() error {
	recipe, err := filepath.Abs(s.recipe.File)
	if err != nil {
		return err
	}
	keys := map[digest.Digest][]string{}
	s.needs = map[digest.Digest]bool{}
	for _, n := range s.graph.Nodes {
		if n.IsSource() || planner.IsEphemeral(n.Op) {
			continue
		}
		// Recipe-wide nodes (results) belong to no one run: no names.
		runs := []string{}
		for _, r := range n.Runs {
			if r != "" {
				runs = append(runs, r)
			}
		}
		keys[n.Key] = runs
		s.needs[n.Key] = true
		// A checkpoint left by an interrupted run is needed to resume.
		if ck := executor.CheckpointKey(n); s.hasEntry(ck) {
			keys[ck] = runs
			s.needs[ck] = true
		}
	}
	s.store.SetOrigin(recipe, keys)
	return s.store.RecordApply(cache.Apply{Recipe: recipe, Time: time.Now(), Keys: keys})
}

// hasEntry says whether the cache holds key (a failing lookup: no).
func (s *session) hasEntry(key digest.Digest) bool {
	_, ok, err := s.store.Stat(key)
	return ok && err == nil
}

// enforceCacheBudget evicts least recently used entries, reclaimable ones
// first, while the cache exceeds LRMC_CACHE_MAX, never one this apply
// needs, and says what it did on w.
func (s *session) enforceCacheBudget(w io.Writer) error {
	if !s.hasBudget {
		return nil
	}
	removed, left, err := s.store.EnforceBudget(s.budget, s.needs)
	if err != nil {
		return fmt.Errorf("enforcing %s: %w", cacheMaxEnv, err)
	}
	var freed int64
	for _, e := range removed {
		freed += e.Size
	}
	if len(removed) > 0 {
		fmt.Fprintf(w, "lrmc: cache over %s (%s): evicted %d entries (%s), %s left\n",
			cacheMaxEnv, humanize.IBytes(uint64(s.budget)), len(removed), humanize.IBytes(uint64(freed)), humanize.IBytes(uint64(left)))
	}
	if left > s.budget {
		fmt.Fprintf(w, "lrmc: cache holds %s, over %s (%s): the rest is what this apply needs\n",
			humanize.IBytes(uint64(left)), cacheMaxEnv, humanize.IBytes(uint64(s.budget)))
	}
	return nil
}

// parseSize reads "10GiB", "500MB", "1024" (bytes).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return n, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("cannot read size %q (try 10GiB or 500MB)", s)
	}
	return int64(n), nil
}
