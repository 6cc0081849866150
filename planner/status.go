package planner

// Status is what executing a graph would do with a node.
type Status int

const (
	// Skip: no target needs the node, because everything downstream is cached.
	Skip Status = iota
	// Cached: the node's result is in the cache.
	Cached
	// Run: the node will be computed.
	Run
	// Read: a source file that will be read.
	Read
)

func (s Status) String() string {
	return [...]string{"skip", "cached", "run", "read"}[s]
}

// Statuses decides, given which keys are cached, what executing the graph
// would do with each node: walking back from the targets, a cached node
// stops the walk (its inputs are not needed), an uncached one will run and
// needs its inputs. Nodes whose results are never stored (Ephemeral) run
// whenever they are needed.
func (g *Graph) Statuses(cached func(*Node) bool) map[*Node]Status {
	st := make(map[*Node]Status, len(g.Nodes))
	for _, n := range g.Nodes {
		st[n] = Skip
	}
	var visit func(n *Node)
	visit = func(n *Node) {
		if st[n] != Skip {
			return
		}
		switch {
		case n.IsSource():
			st[n] = Read
			return
		case !IsEphemeral(n.Op) && cached(n):
			st[n] = Cached
			return
		}
		st[n] = Run
		for _, in := range n.Inputs {
			visit(in)
		}
	}
	for _, t := range g.Targets {
		visit(t)
	}
	// Outputs that copy a source file read it even when nothing runs.
	for _, o := range g.Outputs {
		if o.Node != nil && o.Node.IsSource() {
			st[o.Node] = Read
		}
	}
	return st
}

// Ephemeral core ops are cheap to recompute from their inputs and would only
// duplicate model weights in the cache, so their results are never stored (methods register their own: IsEphemeral).
var Ephemeral = map[string]bool{
	OpSource:         true,
	OpModelLoad:      true,
	OpModelRecovered: true,
}
