// Package progress renders the executor's event stream for a terminal
// (live, redrawn in place), as plain lines (logs, CI), or as JSON lines
// (machines). Rendering is separate from execution, as in BuildKit.
package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"lrmc/executor"
)

// Display consumes events.
type Display interface {
	Event(executor.Event)
	// Close finishes the display (the tty mode clears its live area).
	Close()
}

// New returns the display for mode "auto", "tty", "plain" or "json". Auto
// picks tty when w is a terminal, plain otherwise.
func New(mode string, w io.Writer) (Display, error) {
	switch mode {
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return newTTY(w), nil
		}
		return &plain{w: w}, nil
	case "tty":
		return newTTY(w), nil
	case "plain":
		return &plain{w: w}, nil
	case "json":
		return &jsonLines{enc: json.NewEncoder(w)}, nil
	}
	return nil, fmt.Errorf("unknown progress mode %q (want auto, tty, plain or json)", mode)
}

type jsonLines struct{ enc *json.Encoder }

func (j *jsonLines) Event(e executor.Event) { _ = j.enc.Encode(e) }
func (j *jsonLines) Close()                 {}

// plain prints one line per state change; progress is printed at most
// every few seconds per node so logs stay readable.
type plain struct {
	w    io.Writer
	last map[string]time.Time
}

func (p *plain) Event(e executor.Event) {
	short := e.Node
	if len(short) > 12 {
		short = short[:12]
	}
	switch e.Event {
	case executor.EventProgress:
		if p.last == nil {
			p.last = map[string]time.Time{}
		}
		if time.Since(p.last[e.Node]) < 5*time.Second && e.Done != e.Total {
			return
		}
		p.last[e.Node] = time.Now()
		fmt.Fprintf(p.w, "%-8s %s %-16s %s %d/%d%s\n", "progress", short, e.Op, e.Label, e.Done, e.Total, formatMetrics(e.Metrics))
	case executor.EventFinished:
		fmt.Fprintf(p.w, "%-8s %s %-16s %s (%.2fs)\n", "done", short, e.Op, e.Label, e.Seconds)
	case executor.EventFailed:
		fmt.Fprintf(p.w, "%-8s %s %-16s %s: %s\n", "FAILED", short, e.Op, e.Label, e.Error)
	case executor.EventOutput:
		fmt.Fprintf(p.w, "%-8s %s\n", "wrote", e.Path)
	default:
		fmt.Fprintf(p.w, "%-8s %s %-16s %s\n", e.Event, short, e.Op, e.Label)
	}
}

func (p *plain) Close() {}

// tty keeps a live area listing running nodes with their progress, redrawn
// in place at most ten times a second; finished nodes scroll above it.
type tty struct {
	w       io.Writer
	mu      sync.Mutex
	running map[string]*row
	lines   int // lines of the live area currently on screen
	last    time.Time
	start   time.Time
	done    int
	cached  int
}

type row struct {
	label, op   string
	done, total int64
	since       time.Time
	metrics     map[string]float64
	// first is the progress count when this display first saw the node
	// (a resumed op starts past 0), for the ETA.
	first int64
	seen  bool
}

func newTTY(w io.Writer) *tty {
	return &tty{w: w, running: map[string]*row{}, start: time.Now()}
}

func (t *tty) Event(e executor.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Event {
	case executor.EventStarted:
		t.running[e.Node] = &row{label: e.Label, op: e.Op, since: time.Now()}
	case executor.EventProgress:
		if r, ok := t.running[e.Node]; ok {
			if !r.seen {
				r.first, r.seen = e.Done, true
			}
			r.done, r.total, r.metrics = e.Done, e.Total, e.Metrics
		}
		if time.Since(t.last) < 100*time.Millisecond {
			return
		}
	case executor.EventFinished:
		delete(t.running, e.Node)
		t.done++
		t.above(fmt.Sprintf(" ✔ %-16s %s  %.2fs", e.Op, e.Label, e.Seconds))
		return
	case executor.EventCached:
		t.cached++
	case executor.EventFailed:
		delete(t.running, e.Node)
		t.above(fmt.Sprintf(" ✘ %-16s %s: %s", e.Op, e.Label, e.Error))
		return
	case executor.EventCorrupt:
		t.above(fmt.Sprintf(" ! %-16s %s: corrupt cache entry, recomputing", e.Op, e.Label))
		return
	case executor.EventOutput:
		t.above(" → " + e.Path)
		return
	}
	t.redraw()
}

// above prints a permanent line, then redraws the live area under it.
func (t *tty) above(line string) {
	t.clear()
	fmt.Fprintln(t.w, line)
	t.redraw()
}

func (t *tty) clear() {
	if t.lines > 0 {
		fmt.Fprintf(t.w, "\x1b[%dA\x1b[J", t.lines)
		t.lines = 0
	}
}

func (t *tty) redraw() {
	t.clear()
	keys := make([]string, 0, len(t.running))
	for k := range t.running {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t.running[keys[i]].since.Before(t.running[keys[j]].since) })
	var b strings.Builder
	for _, k := range keys {
		r := t.running[k]
		fmt.Fprintf(&b, " ⠿ %-16s %s  %s  %.1fs%s%s\n", r.op, r.label, bar(r.done, r.total), time.Since(r.since).Seconds(), eta(r), formatMetrics(r.metrics))
	}
	fmt.Fprintf(&b, "   %d done, %d cached, %d running  %.1fs\n", t.done, t.cached, len(t.running), time.Since(t.start).Seconds())
	fmt.Fprint(t.w, b.String())
	t.lines = strings.Count(b.String(), "\n")
	t.last = time.Now()
}

// eta extrapolates the node's rate since this display first saw it.
func eta(r *row) string {
	if !r.seen || r.done <= r.first || r.total <= 0 {
		return ""
	}
	el := time.Since(r.since).Seconds()
	left := el / float64(r.done-r.first) * float64(r.total-r.done)
	return fmt.Sprintf(" ETA %s", (time.Duration(left) * time.Second).Round(time.Second))
}

// formatMetrics prints measurements in a stable order: loss first.
func formatMetrics(m map[string]float64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == "loss") != (keys[j] == "loss") {
			return keys[i] == "loss"
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for _, k := range keys {
		v := m[k]
		switch {
		case k == "tokens_per_s":
			fmt.Fprintf(&b, "  %.0f tok/s", v)
		case v != 0 && (v < 1e-3 || v >= 1e5):
			fmt.Fprintf(&b, "  %s %.3g", k, v)
		default:
			fmt.Fprintf(&b, "  %s %.4f", k, v)
		}
	}
	return b.String()
}

func bar(done, total int64) string {
	if total <= 0 {
		return ""
	}
	const width = 20
	filled := int(done * width / total)
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("█", filled), strings.Repeat("·", width-filled), done, total)
}

func (t *tty) Close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clear()
}
