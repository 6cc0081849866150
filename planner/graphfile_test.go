package planner_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/internal/version"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// depthGraph plans two ShortGPT runs and a dense baseline against keyEnv.
func depthGraph(t *testing.T) *planner.Graph {
	t.Helper()
	model := ir.Model{Path: "/m/model.bin", Format: "auto"}
	eval := []ir.Eval{{Name: "ppl", Task: "perplexity", Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	cal := ir.Calibration{Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 8, SeqLen: 64, Seed: 1}
	run := func(name string, remove int) ir.Run {
		return ir.Run{Name: name, Model: model, Eval: eval, Calibration: cal, Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: remove}}
	}
	r := &ir.Recipe{File: "r.cue", Dense: true, DenseModel: model, DenseEval: eval, Output: ir.Output{Dir: "/out", Formats: []string{"llama2c"}},
		Runs: []ir.Run{run("one", 1), run("two", 2)}}
	g, err := planner.Plan(r, keyEnv{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// sizeOf stands in for the file system: a size derived from the path.
func sizeOf(path string) int64 { return int64(len(path)) * 1000 }

func encode(t *testing.T, g *planner.Graph) []byte {
	t.Helper()
	b, err := planner.EncodeGraph(g, "/r/r.cue", sizeOf)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGraphFileRoundTrip(t *testing.T) {
	g := depthGraph(t)
	b := encode(t, g)
	if again := encode(t, depthGraph(t)); !bytes.Equal(b, again) {
		t.Fatal("two encodings of the same plan differ")
	}
	back, f, err := planner.DecodeGraph(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.LRMC != version.Version || f.Recipe != "/r/r.cue" || f.Format != "lrmc.graph/v1" {
		t.Errorf("header %q %q %q", f.Format, f.LRMC, f.Recipe)
	}
	if len(back.Nodes) != len(g.Nodes) || len(back.Targets) != len(g.Targets) {
		t.Fatalf("%d nodes and %d targets, want %d and %d", len(back.Nodes), len(back.Targets), len(g.Nodes), len(g.Targets))
	}
	sources := 0
	for i, n := range g.Nodes {
		m := back.Nodes[i]
		if m.Key != n.Key || m.Op != n.Op || m.Version != n.Version || !bytes.Equal(m.Params, n.Params) ||
			m.Label != n.Label || m.Source != n.Source || !reflect.DeepEqual(m.Runs, n.Runs) || len(m.Inputs) != len(n.Inputs) {
			t.Fatalf("node %d: %+v, want %+v", i, m, n)
		}
		for j, in := range n.Inputs {
			if m.Inputs[j].Key != in.Key {
				t.Errorf("node %d input %d: %s, want %s", i, j, m.Inputs[j].Key.Short(), in.Key.Short())
			}
		}
		if got, ok := back.Node(n.Key); !ok || got != m {
			t.Errorf("node %s not found by key", n.Key.Short())
		}
		if n.IsSource() {
			sources++
			gn := f.Nodes[i]
			if gn.File == nil || gn.File.Path != n.Source || gn.File.Size != sizeOf(n.Source) || "\"digest\":\""+gn.File.Digest+"\"" != strings.Trim(string(n.Params), "{}") {
				t.Errorf("source %s: file %+v, params %s", n.Source, gn.File, n.Params)
			}
		}
	}
	if sources != 3 { // model, tokenizer, text
		t.Errorf("%d sources, want 3", sources)
	}
	for i, n := range g.Targets {
		if back.Targets[i].Key != n.Key {
			t.Errorf("target %d differs", i)
		}
	}
	// Encoding what was read gives the same bytes.
	if again := encode(t, back); !bytes.Equal(b, again) {
		t.Errorf("re-encoding the decoded graph changed it:\n%s\nwant:\n%s", again, b)
	}
}

// tamper decodes the encoded graph, lets edit change the first node of
// op, and returns DecodeGraph's error for the result.
func tamper(t *testing.T, op string, edit func(f *planner.GraphFile, n *planner.GraphNode)) (string, *planner.GraphNode) {
	t.Helper()
	var f planner.GraphFile
	if err := json.Unmarshal(encode(t, depthGraph(t)), &f); err != nil {
		t.Fatal(err)
	}
	var n *planner.GraphNode
	for i := range f.Nodes {
		if f.Nodes[i].Op == op {
			n = &f.Nodes[i]
			break
		}
	}
	if n == nil {
		t.Fatalf("no %s node", op)
	}
	edit(&f, n)
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = planner.DecodeGraph(b)
	if err == nil {
		return "", n
	}
	return err.Error(), n
}

func TestGraphFileRejectsEdits(t *testing.T) {
	v := version.Version
	capV, _ := planner.OpVersion(capture.OpBlock)
	for _, c := range []struct {
		name, op string
		edit     func(*planner.GraphFile, *planner.GraphNode)
		want     func(k string, n *planner.GraphNode) string
	}{
		{"params", capture.OpBlock, func(_ *planner.GraphFile, n *planner.GraphNode) {
			var b bytes.Buffer
			json.Compact(&b, n.Params)
			n.Params = json.RawMessage(strings.Replace(b.String(), `"layer":0`, `"layer":1`, 1))
		}, nil},
		{"op version", capture.OpBlock, func(_ *planner.GraphFile, n *planner.GraphNode) { n.Version++ }, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (capture.block): field "version": planned at version %d, but this lrmc %s implements capture.block at version %d; plan the recipe again with this lrmc`, k, capV+1, v, capV)
		}},
		{"unknown op", capture.OpBlock, func(_ *planner.GraphFile, n *planner.GraphNode) { n.Op = "capture.blocks" }, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (capture.blocks): field "op": "capture.blocks" is not an op this lrmc %s knows (the graph was planned by lrmc %s)`, k, v, v)
		}},
		{"key", planner.OpPerplexity, func(_ *planner.GraphFile, n *planner.GraphNode) {
			n.Key = strings.Repeat("0", 12) + n.Key[12:]
		}, nil},
		{"inputs swapped", planner.OpPerplexity, func(_ *planner.GraphFile, n *planner.GraphNode) {
			n.Inputs[0], n.Inputs[1] = n.Inputs[1], n.Inputs[0]
		}, nil},
		{"input not before", planner.OpTokens, func(f *planner.GraphFile, n *planner.GraphNode) {
			n.Inputs[0] = f.Nodes[len(f.Nodes)-1].Key
		}, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (data.tokens): field "inputs[0]": %s is no node before it in the graph`, k, n.Inputs[0][:12])
		}},
		{"ephemeral", planner.OpModelLoad, func(_ *planner.GraphFile, n *planner.GraphNode) { n.Ephemeral = false }, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (model.load): field "ephemeral": false, but this lrmc %s never caches the results of model.load`, k, v)
		}},
		{"file digest", planner.OpSource, func(_ *planner.GraphFile, n *planner.GraphNode) {
			n.File.Digest = strings.Repeat("ab", 32)
		}, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (source): field "file.digest": abababababab, but the key was planned for `, k)
		}},
		{"file missing", planner.OpSource, func(_ *planner.GraphFile, n *planner.GraphNode) { n.File = nil }, func(k string, n *planner.GraphNode) string {
			return fmt.Sprintf(`node %s (source): field "file": a source node must name its file`, k)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, n := tamper(t, c.op, c.edit)
			key12 := n.Key[:12]
			var want string
			if c.want == nil {
				// Content edits are caught by the recomputed key.
				want = fmt.Sprintf("node %s (%s): key does not match the node's content: its op, version, params and inputs hash to ", key12, n.Op)
			} else {
				want = c.want(key12, n)
			}
			if got == "" || !strings.HasPrefix(got, want) {
				t.Errorf("error:\n%s\nwant it to start with:\n%s", got, want)
			}
			if c.want == nil && !strings.HasSuffix(got, "; the graph was edited after it was planned") {
				t.Errorf("error %q does not say the graph was edited", got)
			}
		})
	}
}

func TestGraphFileRejectsOtherFormats(t *testing.T) {
	b := encode(t, depthGraph(t))
	for _, c := range []struct{ name, in, want string }{
		{"format", strings.Replace(string(b), `"lrmc.graph/v1"`, `"lrmc.graph/v2"`, 1),
			`field "format": "lrmc.graph/v2", want "lrmc.graph/v1" (written by lrmc ` + version.Version + `; plan the recipe again with this lrmc ` + version.Version + `)`},
		{"unknown field", strings.Replace(string(b), `"targets"`, `"outputs": [], "targets"`, 1),
			`not a graph lrmc can read: json: unknown field "outputs"`},
		{"trailing", string(b) + "{}", "not a graph lrmc can read: data after the graph's JSON object"},
		{"target", strings.Replace(string(b), `"targets": [`+"\n"+`    "`, `"targets": [`+"\n"+`    "0000000000000000000000000000000000000000000000000000000000000000", "`, 1),
			`field "targets[0]": 000000000000 is no node of the graph`},
	} {
		_, _, err := planner.DecodeGraph([]byte(c.in))
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
}
