package main

import (
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"lrmc/compiler"
)

// Shell completion. cobra's `lrmc completion bash|zsh|fish|powershell`
// writes the script; the script asks `lrmc __complete ...`, which answers
// from what completeFlags registers here, for every command at once, so a
// command added later gets its completions without code of its own:
//
//   - a RECIPE argument (a command whose Use names RECIPE) completes .cue
//     files;
//   - --run completes the run names of the recipe given as the first
//     argument (read from the recipe, not validated, so a recipe with
//     mistakes still completes);
//   - a flag whose usage ends in a list of its values, "...: auto, tty,
//     plain or json", completes those values.

// choiceList is the end of a flag's usage that lists its values.
var choiceList = regexp.MustCompile(`:\s+([A-Za-z0-9_.-]+(?:,\s+[A-Za-z0-9_.-]+)*(?:,?\s+or\s+[A-Za-z0-9_.-]+)?)\)?$`)

// flagChoices are the values the usage of a flag lists, or nil.
func flagChoices(usage string) []string {
	m := choiceList.FindStringSubmatch(strings.TrimSpace(usage))
	if m == nil {
		return nil
	}
	var out []string
	for _, part := range strings.Split(m[1], ",") {
		for _, v := range strings.Split(part, " or ") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	if len(out) < 2 {
		return nil // a single word after a colon is prose, not a choice
	}
	return out
}

// completeFlags registers the completions of cmd and its subcommands.
func completeFlags(cmd *cobra.Command) {
	if strings.Contains(cmd.Use, "RECIPE") && cmd.ValidArgsFunction == nil {
		cmd.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"cue"}, cobra.ShellCompDirectiveFilterFileExt
		}
	}
	register := func(f *pflag.Flag) {
		if _, ok := cmd.GetFlagCompletionFunc(f.Name); ok {
			return // registered already (a persistent flag seen again, or its command's own)
		}
		switch choices := flagChoices(f.Usage); {
		case f.Name == "run":
			_ = cmd.RegisterFlagCompletionFunc(f.Name, completeRuns)
		case choices != nil:
			_ = cmd.RegisterFlagCompletionFunc(f.Name, cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
		}
	}
	cmd.LocalNonPersistentFlags().VisitAll(register)
	cmd.PersistentFlags().VisitAll(register)
	for _, sub := range cmd.Commands() {
		completeFlags(sub)
	}
}

// completeRuns completes --run with the names of the runs of the recipe
// named by the first argument.
func completeRuns(_ *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names, err := compiler.RunNames(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
