package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"lrmc/cache"
)

func cacheCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect and maintain the result cache",
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "ls",
			Short: "List cache entries, most recently used first",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := g.openCacheForReading()
				if err != nil {
					return err
				}
				defer s.Close()
				metas, err := s.List()
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY\tOP\tSIZE\tLAST USED\tNAME")
				for _, m := range metas {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Key.Short(), m.Op, humanize.IBytes(uint64(m.Size)), m.LastUsed.Local().Format(time.DateTime), m.Name)
				}
				return tw.Flush()
			},
		},
		&cobra.Command{
			Use:   "du",
			Short: "Print the number of entries and their total size",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				s, err := g.openCacheForReading()
				if err != nil {
					return err
				}
				defer s.Close()
				n, size, err := s.Usage()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d entries, %s (%d bytes)\n", n, humanize.IBytes(uint64(size)), size)
				return nil
			},
		},
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
	var maxSize string
	cmd := &cobra.Command{
		Use:   "gc --max-size SIZE",
		Short: "Evict least recently used entries until the cache fits in SIZE (e.g. 10GiB, 500MB)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limit, err := parseSize(maxSize)
			if err != nil {
				return fmt.Errorf("--max-size: %w", err)
			}
			s, err := g.openCache()
			if err != nil {
				return err
			}
			defer s.Close()
			removed, err := s.GC(limit)
			if err != nil {
				return err
			}
			var freed int64
			for _, m := range removed {
				freed += m.Size
			}
			n, size, err := s.Usage()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "evicted %d entries (%s); %d entries, %s remain\n",
				len(removed), humanize.IBytes(uint64(freed)), n, humanize.IBytes(uint64(size)))
			return nil
		},
	}
	cmd.Flags().StringVar(&maxSize, "max-size", "", "size to shrink the cache to")
	cmd.MarkFlagRequired("max-size")
	return cmd
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
