// Command lrmc compiles pruning recipes into content-addressed DAGs and runs
// them on lrmc's CPU kernel runtime. Each subcommand lives in its own file.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"lrmc/cache"
	"lrmc/internal/version"
	// Every pruning method and statistic registers itself.
	_ "lrmc/methods/all"
)

// globals are the flags every subcommand shares.
type globals struct {
	cacheDir string
	// remote is the shared cache's URL (--remote-cache, $LRMC_REMOTE_CACHE).
	remote   string
	attached cache.Remote // the remote store opened for remote
	wait     waitFlag
	logLevel string
	stderr   io.Writer
}

// exitError carries a specific exit status (plan's --detailed-exitcode).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	// LRMC_CPUPROFILE=FILE writes a CPU profile of the whole command
	// (pprof format), to see where a short command such as a warm apply
	// spends its time. Undocumented on purpose: a measuring aid.
	if p := os.Getenv("LRMC_CPUPROFILE"); p != "" {
		stop, err := startCPUProfile(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lrmc: LRMC_CPUPROFILE:", err)
			os.Exit(1)
		}
		code := run(os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// startCPUProfile starts profiling into path and returns what stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	// At pprof's 100 Hz a 0.1 s command gives ten samples: profile many
	// runs and merge them (go tool pprof BIN FILE...).
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// run executes the command line and returns the exit status; tests call it
// in-process.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stderr: stderr}
	root := &cobra.Command{
		Use:           "lrmc",
		Short:         "A declarative pipeline compiler for pruning large language models",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `lrmc version` prints; provenance.json
		// records the same constant.
		Version: version.Version,
	}
	root.SetVersionTemplate("lrmc {{.Version}}\n")
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.cacheDir, "cache", "", "cache directory (default $LRMC_CACHE, else the user cache directory)")
	root.PersistentFlags().StringVar(&g.remote, "remote-cache", os.Getenv("LRMC_REMOTE_CACHE"), "shared cache many machines read through and write back to: file:///DIR or s3://BUCKET/PREFIX (default $LRMC_REMOTE_CACHE)")
	root.PersistentFlags().Var(&g.wait, "wait", "wait for another lrmc process holding the cache instead of failing: --wait waits as long as it takes, --wait=5m at most that long")
	root.PersistentFlags().Lookup("wait").NoOptDefVal = "true"
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	root.AddCommand(vetCmd(g), planCmd(g), applyCmd(g), graphCmd(g), generateCmd(g), cacheCmd(g),
		tokenizeCmd(), chatCmd(), inspectCmd(), benchCmd(), versionCmd(), reportCmd(), schemaCmd(), recipeTopic(), dataCmd(g), execCmd(g))
	completeFlags(root)
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		fmt.Fprintln(stderr, "lrmc:", err)
		return 1
	}
	return 0
}

func (g *globals) logger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "lrmc", Level: hclog.LevelFromString(g.logLevel), Output: g.stderr})
}

// waitFlag is --wait: off, on (wait indefinitely) or a bound on the wait.
// A bare --wait means "true" (pflag's NoOptDefVal), so it needs no value.
type waitFlag struct {
	on  bool
	max time.Duration // zero: indefinitely
}

func (w *waitFlag) String() string {
	switch {
	case !w.on:
		return "false"
	case w.max == 0:
		return "true"
	}
	return w.max.String()
}

func (w *waitFlag) Set(s string) error {
	if b, err := strconv.ParseBool(s); err == nil {
		*w = waitFlag{on: b}
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration such as 30s or 5m, or nothing to wait indefinitely; got %q", s)
	}
	*w = waitFlag{on: true, max: d}
	return nil
}

func (w *waitFlag) Type() string { return "duration" }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print lrmc's version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "lrmc", version.Version) },
	}
}
