package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/report"
)

func reportCmd() *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "report RECIPE...",
		Short: "Write report.md and report.html from applied recipes' results",
		Long: `Report reads the results of applied recipes (results.json and each run's
metrics.json under output.dir) and writes report.md (the results table) and
report.html (the table and SVG plots, self-contained) into -o, by default
the first recipe's output directory. Several recipes give one report, their
runs named RECIPE/RUN. apply writes the report of its recipe by itself.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var recipes []*ir.Recipe
			for _, path := range args {
				r, err := compiler.Compile(path)
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					return exitError{code: 1}
				}
				recipes = append(recipes, r)
			}
			dir := outDir
			if dir == "" {
				dir = recipes[0].Output.Dir
			}
			paths, err := writeReport(dir, recipes...)
			if err != nil {
				return err
			}
			for _, p := range paths {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "directory to write the report into (default: the first recipe's output.dir)")
	return cmd
}

// writeReport writes the report of the applied recipes into dir, each
// file atomically (a killed write leaves the previous file, and apply
// removes the temporary one), and returns the paths written.
func writeReport(dir string, recipes ...*ir.Recipe) ([]string, error) {
	var srcs []report.Source
	names := map[string]string{}
	for _, r := range recipes {
		name := report.RecipeName(r)
		if prev, dup := names[name]; dup {
			return nil, fmt.Errorf("report: recipes %s and %s have the same name %s", prev, r.File, name)
		}
		names[name] = r.File
		s, err := report.Load(r)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		srcs = append(srcs, s)
	}
	rep, err := report.Build(srcs)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	files := rep.Files()
	var paths []string
	for _, name := range []string{report.MarkdownFile, report.HTMLFile} {
		p := filepath.Join(dir, name)
		if err := executor.WriteFileAtomic(p, files[name]); err != nil {
			return nil, fmt.Errorf("report: %s: %w", p, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}
