package progress

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"lrmc/executor"
)

func TestPlainAndJSON(t *testing.T) {
	events := []executor.Event{
		{Event: executor.EventCached, Node: strings.Repeat("a", 64), Op: "capture.block", Label: "capture block 0", Cached: true},
		{Event: executor.EventStarted, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora"},
		{Event: executor.EventProgress, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora", Done: 10, Total: 10,
			Metrics: map[string]float64{"lr": 3e-3, "loss": 2.5, "tokens_per_s": 1234.4}},
		{Event: executor.EventFinished, Node: strings.Repeat("b", 64), Op: "recover.train", Label: "recover lora", Seconds: 1.5},
	}
	var buf bytes.Buffer
	d, err := New("plain", &buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		d.Event(e)
	}
	want := "cached   aaaaaaaaaaaa capture.block    capture block 0\n" +
		"started  bbbbbbbbbbbb recover.train    recover lora\n" +
		"progress bbbbbbbbbbbb recover.train    recover lora 10/10  loss 2.5000  lr 0.0030  1234 tok/s\n" +
		"done     bbbbbbbbbbbb recover.train    recover lora (1.50s)\n"
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
	if ev["event"] != "progress" || ev["metrics"].(map[string]any)["loss"] != 2.5 || ev["cached"] != false {
		t.Errorf("json progress line: %s", lines[2])
	}
	if _, err := New("fancy", &buf); err == nil || !strings.Contains(err.Error(), `unknown progress mode "fancy"`) {
		t.Errorf("bad mode: %v", err)
	}
}

func TestTTYRedrawsInPlace(t *testing.T) {
	var buf bytes.Buffer
	d, _ := New("tty", &buf)
	d.Event(executor.Event{Event: executor.EventStarted, Node: "n1", Op: "capture.block", Label: "capture block 1"})
	d.Event(executor.Event{Event: executor.EventFinished, Node: "n1", Op: "capture.block", Label: "capture block 1", Seconds: 0.25})
	d.Close()
	out := buf.String()
	if !strings.Contains(out, "✔ capture.block") || !strings.Contains(out, "\x1b[") {
		t.Errorf("tty output lacks the finished line or cursor movement: %q", out)
	}
}
