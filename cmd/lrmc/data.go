package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"lrmc/executor/ops"
	"lrmc/planner"
)

func dataCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Look at a recipe's data as the model sees it",
	}
	cmd.AddCommand(dataPreviewCmd(g))
	return cmd
}

func dataPreviewCmd(g *globals) *cobra.Command {
	var runName string
	var n, pieces int
	cmd := &cobra.Command{
		Use:   "preview RECIPE [--run NAME] [--n 3] [--pieces 64]",
		Short: "Print the calibration, recovery and evaluation text and tokens a recipe feeds the model",
		Long: `Preview plans RECIPE and, for each of its data ops (calibration and
perplexity text: data.tokens; recovery training data: data.sft), runs the
op's own reading, chat-template rendering and tokenization over its split,
and prints the first N documents or conversations: the rendered text (with
the chat template applied and enable_thinking as configured) and the token
pieces (--pieces: how many per sequence, -1 for all; recovery marks the
tokens trained on with ⟦ ⟧). It warns when the chat template drops content
of the data, counting the <think> blocks of the messages that do not
reach the model (Qwen3's template drops the reasoning of assistant turns
before the last user message). Nothing is written to the cache.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.loadWith(args[0], g.openCacheForReading)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			s.store.Close()
			nodes := dataNodes(s.graph, runName)
			if len(nodes) == 0 {
				if runName != "" {
					return fmt.Errorf("%s: no run %q reads data (runs: %s)", args[0], runName, strings.Join(runNames(s.graph), ", "))
				}
				return fmt.Errorf("%s: the recipe reads no data", args[0])
			}
			w := cmd.OutOrStdout()
			for i, dn := range nodes {
				if i > 0 {
					fmt.Fprintln(w)
				}
				pv, err := ops.PreviewData(dn.node.Op, dn.node.Params, dn.node.Inputs[0].Source, dn.node.Inputs[1].Source, n)
				if err != nil {
					return err
				}
				printPreview(w, dn, pv, pieces)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&runName, "run", "", "only the data of this run (default: every run's)")
	f.IntVar(&n, "n", 3, "documents or conversations shown per data set")
	f.IntVar(&pieces, "pieces", 64, "token pieces shown per sequence (-1: all)")
	return cmd
}

// dataNode is a data op of the plan and what its stream is for.
type dataNode struct {
	node *planner.Node
	role string // calibration, recovery or eval
}

// dataNodes lists the plan's data ops used by run (every run when ""), in
// plan order, each once: runs sharing data share the node.
func dataNodes(g *planner.Graph, run string) []dataNode {
	roles := map[*planner.Node]string{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			switch {
			case in.Op == planner.OpSFT:
				roles[in] = "recovery"
			case in.Op == planner.OpTokens && n.Op == planner.OpEvalWindows:
				roles[in] = "eval"
			case in.Op == planner.OpTokens && roles[in] == "":
				roles[in] = "calibration"
			}
		}
	}
	var out []dataNode
	for _, n := range g.Nodes {
		if (n.Op == planner.OpTokens || n.Op == planner.OpSFT) && (run == "" || slices.Contains(n.Runs, run)) {
			out = append(out, dataNode{n, roles[n]})
		}
	}
	// In the order a run uses them.
	order := map[string]int{"calibration": 0, "recovery": 1, "eval": 2}
	slices.SortStableFunc(out, func(a, b dataNode) int { return order[a.role] - order[b.role] })
	return out
}

func runNames(g *planner.Graph) []string {
	var names []string
	for _, n := range g.Nodes {
		for _, r := range n.Runs {
			if r != "" && !slices.Contains(names, r) {
				names = append(names, r)
			}
		}
	}
	slices.Sort(names)
	return names
}

func printPreview(w io.Writer, dn dataNode, pv *ops.DataPreview, maxPieces int) {
	p := pv.Params
	how := p.Format
	if p.Template == "model" {
		how += ", the model's chat template"
		if p.Thinking != nil {
			how += ", thinking " + map[bool]string{true: "on", false: "off"}[*p.Thinking]
		}
	}
	fmt.Fprintf(w, "%s · %s · %s [%g, %g) · %s\n", dn.role, strings.Join(dn.node.Runs, ", "),
		filepath.Base(dn.node.Inputs[0].Source), p.From, p.To, how)
	unit := "documents"
	if p.Format == "chat" || p.Format == "instruction" {
		unit = "conversations"
	}
	fmt.Fprintf(w, "  %s %s → %s tokens (%s", commas(int64(pv.Items)), unit, commas(int64(pv.Tokens)), dn.node.Op)
	if pv.Op == planner.OpSFT {
		fmt.Fprintf(w, ", %s sequences, %s tokens trained on", commas(int64(pv.Examples)), commas(int64(pv.Trained)))
	}
	fmt.Fprintln(w, ")")
	if t := pv.Think; t.Total > 0 {
		if t.Seen < t.Total {
			fmt.Fprintf(w, "  warning: the chat template drops reasoning: %d of %d <think> blocks reach the model; %d of %d conversations lose some (first: %s)\n",
				t.Seen, t.Total, len(t.Conversations), pv.Items, joinInts(t.Conversations, 5))
		} else {
			fmt.Fprintf(w, "  all %d <think> blocks reach the model\n", t.Total)
		}
	}
	if t := pv.Messages; t.Seen < t.Total {
		fmt.Fprintf(w, "  warning: the chat template drops or rewrites message text: %d of %d messages' text reaches the model verbatim; %d of %d conversations lose some (first: %s)\n",
			t.Seen, t.Total, len(t.Conversations), pv.Items, joinInts(t.Conversations, 5))
	}
	for _, it := range pv.Shown {
		fmt.Fprintf(w, "── %s %d · %s tokens\n", strings.TrimSuffix(unit, "s"), it.Index, commas(int64(len(it.IDs))))
		fmt.Fprintln(w, strings.TrimRight(it.Text, "\n"))
		k := len(it.Pieces)
		if maxPieces >= 0 && maxPieces < k {
			k = maxPieces
		}
		fmt.Fprintf(w, "── pieces 1–%d of %d\n", k, len(it.Pieces))
		fmt.Fprintln(w, formatPieces(it.Pieces[:k], it.Mask))
	}
}

// formatPieces quotes each piece (so that spaces and control characters
// show) and brackets runs of trained-on pieces with ⟦ ⟧.
func formatPieces(pieces []string, mask []bool) string {
	var b strings.Builder
	in := false
	for i, p := range pieces {
		on := mask != nil && mask[i]
		switch {
		case on && !in:
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString("⟦")
		case !on && in:
			b.WriteString("⟧ ")
		case i > 0:
			b.WriteByte(' ')
		}
		in = on
		b.WriteString(strconv.Quote(p))
	}
	if in {
		b.WriteString("⟧")
	}
	return b.String()
}

func joinInts(xs []int, max int) string {
	var parts []string
	for i, x := range xs {
		if i == max {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, strconv.Itoa(x))
	}
	return strings.Join(parts, ", ")
}
