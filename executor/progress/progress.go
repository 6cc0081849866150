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
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"lrmc/executor"
	"lrmc/planner"
)

// Display consumes events.
type Display interface {
	Event(executor.Event)
	// Close finishes the display (the tty mode clears its live area).
	Close()
}

// Config tunes a display.
type Config struct {
	// RunSets are the runs of every node the events may name (as
	// planner.Node.Runs), so the run column is as wide as the widest from
	// the first line on.
	RunSets [][]string
	// Width returns the terminal's width in columns (0: unknown, lines
	// are not truncated). By default the terminal's, else $COLUMNS.
	Width func() int
}

// New returns the display for mode "auto", "tty", "plain" or "json". Auto
// picks tty when w is a terminal, plain otherwise.
func New(mode string, w io.Writer) (Display, error) {
	return NewConfig(mode, w, Config{})
}

// NewConfig is New with a configuration.
func NewConfig(mode string, w io.Writer, cfg Config) (Display, error) {
	f := newFormat(cfg.RunSets)
	switch mode {
	case "auto":
		if isTerminal(w) {
			return newTTY(w, f, cfg.Width), nil
		}
		return &plain{w: w, f: f}, nil
	case "tty":
		return newTTY(w, f, cfg.Width), nil
	case "plain":
		return &plain{w: w, f: f}, nil
	case "json":
		return &jsonLines{enc: json.NewEncoder(w)}, nil
	}
	return nil, fmt.Errorf("unknown progress mode %q (want auto, tty, plain or json)", mode)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// terminalWidth asks the terminal behind w, else $COLUMNS; 0 when neither
// says.
func terminalWidth(w io.Writer) func() int {
	return func() int {
		if f, ok := w.(*os.File); ok {
			if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
				return cols
			}
		}
		if c, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && c > 0 {
			return c
		}
		return 0
	}
}

// format holds the column widths every line shares, so op names and
// run names line up down the screen.
type format struct {
	op, run int
}

func newFormat(runSets [][]string) format {
	f := format{op: 16}
	for name := range planner.OpVersions() {
		f.op = max(f.op, len(name))
	}
	for _, r := range runSets {
		f.run = max(f.run, utf8.RuneCountInString(runTag(r)))
	}
	return f
}

// maxRunsNamed is how many runs a shared node's line names before it
// says "shared by N runs" instead.
const maxRunsNamed = 3

// runTag names the runs of a node: one name, a few names, "shared by N
// runs", or "recipe" for the recipe-wide results ("" when the event
// names no run).
func runTag(runs []string) string {
	switch {
	case len(runs) == 0:
		return ""
	case len(runs) == 1 && runs[0] == "":
		return "recipe"
	case len(runs) <= maxRunsNamed:
		return strings.Join(runs, ",")
	}
	return fmt.Sprintf("shared by %d runs", len(runs))
}

func (f format) op_(op string) string { return pad(op, f.op) }

func (f format) run_(runs []string) string { return pad(runTag(runs), f.run) }

func pad(s string, w int) string {
	if n := utf8.RuneCountInString(s); n < w {
		return s + strings.Repeat(" ", w-n)
	}
	return s
}

type jsonLines struct{ enc *json.Encoder }

func (j *jsonLines) Event(e executor.Event) { _ = j.enc.Encode(e) }
func (j *jsonLines) Close()                 {}

// plain prints one line per state change, naming the node's runs in
// brackets after the op; progress is printed at most every few seconds
// per node so logs stay readable.
type plain struct {
	w    io.Writer
	f    format
	last map[string]time.Time
}

func (p *plain) Event(e executor.Event) {
	short := e.Node
	if len(short) > 12 {
		short = short[:12]
	}
	runs := ""
	if len(e.Runs) > 0 {
		runs = "[" + runTag(e.Runs) + "] "
	}
	head := fmt.Sprintf("%-8s %s %s %s", e.Event, short, p.f.op_(e.Op), runs)
	switch e.Event {
	case executor.EventProgress:
		if p.last == nil {
			p.last = map[string]time.Time{}
		}
		if time.Since(p.last[e.Node]) < 5*time.Second && e.Done != e.Total {
			return
		}
		p.last[e.Node] = time.Now()
		fmt.Fprintf(p.w, "%s%s %d/%d%s\n", head, e.Label, e.Done, e.Total, formatMetrics(e.Metrics))
	case executor.EventFinished:
		fmt.Fprintf(p.w, "%-8s %s %s %s%s (%.2fs)\n", "done", short, p.f.op_(e.Op), runs, e.Label, e.Seconds)
	case executor.EventFailed:
		fmt.Fprintf(p.w, "%-8s %s %s %s%s: %s\n", "FAILED", short, p.f.op_(e.Op), runs, e.Label, e.Error)
	case executor.EventOutput:
		fmt.Fprintf(p.w, "%-8s %s%s\n", "wrote", runs, e.Path)
	default:
		fmt.Fprintf(p.w, "%s%s\n", head, e.Label)
	}
}

func (p *plain) Close() {}

// tty keeps a live area listing running nodes with their progress,
// grouped by run, redrawn in place at most ten times a second; finished
// nodes scroll above it. Every live line is cut to the terminal's width:
// a line that wrapped would take two rows while the redraw moves up one
// per line, leaving a stale copy on screen at every redraw.
type tty struct {
	w        io.Writer
	f        format
	width    func() int
	interval time.Duration
	mu       sync.Mutex
	running  map[string]*row
	lines    int // lines of the live area currently on screen
	last     time.Time
	start    time.Time
	done     int
	cached   int
}

type row struct {
	label, op   string
	runs        []string
	done, total int64
	since       time.Time
	metrics     map[string]float64
	// first is the progress count when this display first saw the node
	// (a resumed op starts past 0), for the ETA.
	first int64
	seen  bool
}

func newTTY(w io.Writer, f format, width func() int) *tty {
	if width == nil {
		width = terminalWidth(w)
	}
	return &tty{w: w, f: f, width: width, interval: 100 * time.Millisecond, running: map[string]*row{}, start: time.Now()}
}

func (t *tty) Event(e executor.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e.Event {
	case executor.EventStarted:
		t.running[e.Node] = &row{label: e.Label, op: e.Op, runs: e.Runs, since: time.Now()}
	case executor.EventProgress:
		if r, ok := t.running[e.Node]; ok {
			if !r.seen {
				r.first, r.seen = e.Done, true
			}
			r.done, r.total, r.metrics = e.Done, e.Total, e.Metrics
		}
		if time.Since(t.last) < t.interval {
			return
		}
	case executor.EventFinished:
		delete(t.running, e.Node)
		t.done++
		t.above(fmt.Sprintf(" ✔ %s  %s  %s  %.2fs", t.f.run_(e.Runs), t.f.op_(e.Op), e.Label, e.Seconds))
		return
	case executor.EventCached:
		t.cached++
	case executor.EventFailed:
		delete(t.running, e.Node)
		t.above(fmt.Sprintf(" ✘ %s  %s  %s: %s", t.f.run_(e.Runs), t.f.op_(e.Op), e.Label, e.Error))
		return
	case executor.EventCorrupt:
		t.above(fmt.Sprintf(" ! %s  %s  %s: corrupt cache entry, recomputing", t.f.run_(e.Runs), t.f.op_(e.Op), e.Label))
		return
	case executor.EventOutput:
		t.above(fmt.Sprintf(" → %s  %s", t.f.run_(e.Runs), e.Path))
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
	// Grouped by run (in the order their first node started), then by
	// start within a run.
	firstStart := map[string]time.Time{}
	for _, k := range keys {
		r := t.running[k]
		tag := runTag(r.runs)
		if s, ok := firstStart[tag]; !ok || r.since.Before(s) {
			firstStart[tag] = r.since
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := t.running[keys[i]], t.running[keys[j]]
		ta, tb := runTag(a.runs), runTag(b.runs)
		if ta != tb {
			if !firstStart[ta].Equal(firstStart[tb]) {
				return firstStart[ta].Before(firstStart[tb])
			}
			return ta < tb
		}
		return a.since.Before(b.since)
	})
	width := t.width()
	var lines []string
	group := ""
	for i, k := range keys {
		r := t.running[k]
		tag := runTag(r.runs)
		name := t.f.run_(r.runs)
		if i > 0 && tag == group {
			// The run is named once per group.
			name = strings.Repeat(" ", utf8.RuneCountInString(name))
		}
		group = tag
		lines = append(lines, fmt.Sprintf(" ⠿ %s  %s  %s  %s  %.1fs%s%s", name, t.f.op_(r.op), r.label, bar(r.done, r.total),
			time.Since(r.since).Seconds(), eta(r), formatMetrics(r.metrics)))
	}
	lines = append(lines, fmt.Sprintf("   %d done, %d cached, %d running  %.1fs", t.done, t.cached, len(t.running), time.Since(t.start).Seconds()))
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(truncate(l, width))
		b.WriteByte('\n')
	}
	fmt.Fprint(t.w, b.String())
	t.lines = len(lines)
	t.last = time.Now()
}

// truncate cuts line to fit width columns, less one: a line that fills
// the last column leaves some terminals' cursor waiting to wrap, and the
// newline after it then skips a row. Every character the display prints
// takes one column.
func truncate(line string, width int) string {
	if width <= 1 || utf8.RuneCountInString(line) < width {
		return line
	}
	r := []rune(line)
	return string(r[:width-2]) + "…"
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
