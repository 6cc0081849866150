package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"lrmc/executor"
)

func TestPlainAndJSON(t *testing.T) {
	events := []executor.Event{
		{Event: executor.EventCached, Node: strings.Repeat("a", 64), Op: "capture.block", Label: "capture block 0", Cached: true, Runs: []string{"r1", "r2"}},
		{Event: executor.EventStarted, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora", Runs: []string{"r1"}},
		{Event: executor.EventProgress, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora", Runs: []string{"r1"}, Done: 10, Total: 10,
			Metrics: map[string]float64{"lr": 3e-3, "loss": 2.5, "tokens_per_s": 1234.4}},
		{Event: executor.EventFinished, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora", Runs: []string{"r1"}, Seconds: 1.5},
		{Event: executor.EventFailed, Node: strings.Repeat("c", 64), Op: "data.tokens", Label: "tokenize x", Runs: []string{"a", "b", "c", "d"}, Error: "x:2: invalid JSON"},
		{Event: executor.EventFinished, Node: strings.Repeat("d", 64), Op: "report.results", Label: "results", Runs: []string{""}},
		{Event: executor.EventOutput, Op: "write", Path: "out/r1/metrics.json", Runs: []string{"r1"}},
	}
	var buf bytes.Buffer
	d, err := New("plain", &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		d.Event(e)
	}
	// Op names are padded to the longest op name the planner knows
	// (eval.gen.generate, 17), so they line up.
	want := "cached   aaaaaaaaaaaa capture.block     [r1,r2] capture block 0\n" +
		"started  bbbbbbbbbbbb recover.train     [r1] recover lora\n" +
		"progress bbbbbbbbbbbb recover.train     [r1] recover lora 10/10  loss 2.5000  lr 0.0030  1234 tok/s\n" +
		"done     bbbbbbbbbbbb recover.train     [r1] recover lora (1.50s)\n" +
		"FAILED   cccccccccccc data.tokens       [shared by 4 runs] tokenize x: x:2: invalid JSON\n" +
		"done     dddddddddddd report.results    [recipe] results (0.00s)\n" +
		"wrote    [r1] out/r1/metrics.json\n"
	if buf.String() != want {
		t.Errorf("plain:\n%s\nwant\n%s", buf.String(), want)
	}

	buf.Reset()
	d, _ = New("json", &buf)
	for _, e := range events {
		d.Event(e)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(events) {
		t.Fatalf("%d JSON lines for %d events", len(lines), len(events))
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["event"] != "progress" || ev["metrics"].(map[string]any)["loss"] != 2.5 || ev["cached"] != false || fmt.Sprint(ev["runs"]) != "[r1]" {
		t.Errorf("json progress line: %s", lines[2])
	}
	if _, err := New("fancy", &buf); err == nil || !strings.Contains(err.Error(), `unknown progress mode "fancy"`) {
		t.Errorf("bad mode: %v", err)
	}
}

// screen is a minimal terminal: a cursor on rows of width columns that
// wraps a line reaching the last column (xterm's deferred wrap), moves up
// on ESC[nA, erases below on ESC[J, and starts a row on newline.
type screen struct {
	width    int
	rows     [][]rune
	row, col int
}

func (s *screen) Write(p []byte) (int, error) {
	str := string(p)
	for i := 0; i < len(str); {
		if strings.HasPrefix(str[i:], "\x1b[") {
			j := i + 2
			for j < len(str) && str[j] >= '0' && str[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(str[i+2 : j])
			switch str[j] {
			case 'A':
				s.row = max(0, s.row-n)
			case 'J':
				s.grow()
				s.rows[s.row] = s.rows[s.row][:min(s.col, len(s.rows[s.row]))]
				s.rows = s.rows[:s.row+1]
			}
			i = j + 1
			continue
		}
		r, size := utf8.DecodeRuneInString(str[i:])
		i += size
		switch r {
		case '\n':
			s.row, s.col = s.row+1, 0
		case '\r':
			s.col = 0
		default:
			if s.col == s.width {
				s.row, s.col = s.row+1, 0
			}
			s.grow()
			for len(s.rows[s.row]) <= s.col {
				s.rows[s.row] = append(s.rows[s.row], ' ')
			}
			s.rows[s.row][s.col] = r
			s.col++
		}
	}
	return len(p), nil
}

func (s *screen) grow() {
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
	}
}

// text returns the rows that hold anything.
func (s *screen) text() []string {
	var out []string
	for _, r := range s.rows {
		if l := strings.TrimRight(string(r), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestTTYFitsTheTerminal(t *testing.T) {
	for _, width := range []int{160, 80} {
		scr := &screen{width: width}
		d, _ := NewConfig("tty", scr, Config{RunSets: [][]string{{"lora-long-run-name"}, {"b"}}, Width: func() int { return width }})
		tt := d.(*tty)
		tt.interval = 0 // redraw on every progress event
		long := executor.Event{Event: executor.EventStarted, Node: "train", Op: "recover.train",
			Label: "recover lora 200 steps (kd) on a long data file name [0, 0.9)", Runs: []string{"lora-long-run-name"}}
		d.Event(long)
		d.Event(executor.Event{Event: executor.EventStarted, Node: "cap", Op: "capture.block", Label: "capture block 1", Runs: []string{"b"}})
		d.Event(executor.Event{Event: executor.EventStarted, Node: "cap2", Op: "capture.block", Label: "capture block 2", Runs: []string{"b"}})
		for step := int64(1); step <= 150; step++ {
			ev := long
			ev.Event, ev.Done, ev.Total = executor.EventProgress, step, 200
			ev.Metrics = map[string]float64{"loss": 2.5, "lr": 3e-4, "tokens_per_s": 4321, "grad_norm": 1.25, "kd_loss": 0.75, "ce_loss": 1.75}
			d.Event(ev)
			if step == 75 {
				d.Event(executor.Event{Event: executor.EventFinished, Node: "cap", Op: "capture.block", Label: "capture block 1", Runs: []string{"b"}, Seconds: 0.5})
			}
		}
		rows := scr.text()
		// One finished line, then the live area: the training row, the
		// capture row and the summary.
		if len(rows) != 4 {
			t.Fatalf("width %d: %d rows on screen, want 4 (no stale copies):\n%s", width, len(rows), strings.Join(rows, "\n"))
		}
		for _, r := range rows {
			if n := utf8.RuneCountInString(r); n >= width {
				t.Errorf("width %d: a row of %d columns: %q", width, n, r)
			}
		}
		if !strings.HasPrefix(rows[0], " ✔ b                   capture.block      capture block 1") {
			t.Errorf("width %d: finished line %q", width, rows[0])
		}
		// The run column is as wide as the longest run name, so op names
		// line up.
		if strings.Index(rows[1], "recover.train") != strings.Index(rows[2], "capture.block") {
			t.Errorf("width %d: op names not aligned:\n%s\n%s", width, rows[1], rows[2])
		}
		if !strings.Contains(rows[1], "lora-long-run-name") || !strings.Contains(rows[1], "150/200") && width == 160 {
			t.Errorf("width %d: training row %q", width, rows[1])
		}
		if width == 80 && !strings.HasSuffix(rows[1], "…") {
			t.Errorf("width 80: the training row is not cut: %q", rows[1])
		}
		if !strings.HasPrefix(rows[3], "   1 done, 0 cached, 2 running") {
			t.Errorf("width %d: summary %q", width, rows[3])
		}
		d.Close()
		if rows := scr.text(); len(rows) != 1 {
			t.Errorf("width %d: after Close %d rows, want the finished line only:\n%s", width, len(rows), strings.Join(rows, "\n"))
		}
	}
}

// TestTTYGroupsByRun: rows of one run sit together, the run named once.
func TestTTYGroupsByRun(t *testing.T) {
	scr := &screen{width: 200}
	d, _ := NewConfig("tty", scr, Config{RunSets: [][]string{{"a"}, {"b"}}, Width: func() int { return 200 }})
	for i, run := range []string{"a", "b", "a"} {
		d.Event(executor.Event{Event: executor.EventStarted, Node: fmt.Sprint(i), Op: "capture.block", Label: fmt.Sprintf("capture block %d", i), Runs: []string{run}})
	}
	rows := scr.text()
	want := []string{" ⠿ a  capture.block      capture block 0", " ⠿    capture.block      capture block 2", " ⠿ b  capture.block      capture block 1"}
	if len(rows) != 4 {
		t.Fatalf("rows:\n%s", strings.Join(rows, "\n"))
	}
	for i, w := range want {
		if !strings.HasPrefix(rows[i], w) {
			t.Errorf("row %d = %q, want prefix %q", i, rows[i], w)
		}
	}
}
