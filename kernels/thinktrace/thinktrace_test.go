package thinktrace

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/tokenizer"
)

const (
	openID  = 1
	closeID = 2
)

var idMarkers = Markers{OpenID: openID, CloseID: closeID}

func TestFromIDs(t *testing.T) {
	cases := []struct {
		name   string
		ids    []int32
		inside bool
		fin    Finish
		want   Trace
	}{
		{"closed", []int32{1, 5, 6, 7, 2, 8, 9}, false, FinishStop,
			Trace{Tokens: 7, Think: 3, After: 2, MarkerTokens: 2, Opened: true, Closed: true}},
		{"starts inside", []int32{5, 6, 2, 8}, true, FinishStop,
			Trace{Tokens: 4, Think: 2, After: 1, MarkerTokens: 1, Opened: true, Closed: true}},
		{"cut inside the block", []int32{1, 5, 6, 7}, false, FinishLength,
			Trace{Tokens: 4, Think: 3, MarkerTokens: 1, Opened: true, Truncated: true}},
		{"cut in the answer", []int32{1, 5, 2, 8, 8}, false, FinishLength,
			Trace{Tokens: 5, Think: 1, After: 2, MarkerTokens: 2, Opened: true, Closed: true, Truncated: true}},
		{"no block", []int32{5, 6, 7}, false, FinishStop,
			Trace{Tokens: 3, After: 3}},
		{"preamble", []int32{9, 1, 5, 2, 8}, false, FinishStop,
			Trace{Tokens: 5, Before: 1, Think: 1, After: 1, MarkerTokens: 2, Opened: true, Closed: true}},
		{"only the first block counts", []int32{1, 5, 2, 1, 6, 2}, false, FinishStop,
			Trace{Tokens: 6, Think: 1, After: 3, MarkerTokens: 2, Opened: true, Closed: true}},
		{"close without open is text", []int32{5, 2, 6}, false, FinishStop,
			Trace{Tokens: 3, After: 3}},
		{"open inside the block is thought", []int32{1, 1, 5, 2}, false, FinishStop,
			Trace{Tokens: 4, Think: 2, MarkerTokens: 2, Opened: true, Closed: true}},
		{"starts inside, ends at once", nil, true, FinishStop,
			Trace{Opened: true}},
		{"empty", nil, false, FinishLength, Trace{Truncated: true}},
	}
	for _, c := range cases {
		m := idMarkers
		m.StartsInside = c.inside
		got, err := FromIDs(c.ids, m, c.fin)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s: %+v\nwant %+v", c.name, got, c.want)
		}
		if got.Tokens != got.Before+got.Think+got.After+got.MarkerTokens {
			t.Errorf("%s: counts do not add up: %+v", c.name, got)
		}
	}
}

func TestFromIDsUnsetMarkers(t *testing.T) {
	_, err := FromIDs([]int32{0, 1}, Markers{}, FinishStop)
	if err == nil || !strings.Contains(err.Error(), "open and close marker ids are both 0") {
		t.Fatalf("error %v", err)
	}
}

func TestFromPieces(t *testing.T) {
	cases := []struct {
		name   string
		pieces []string
		inside bool
		want   Trace
	}{
		{"whole markers", []string{"<think>", "\n", "reason", "</think>", "\n\n", "Ans"}, false,
			Trace{Tokens: 6, Think: 2, After: 2, MarkerTokens: 2, Opened: true, Closed: true}},
		{"markers split over pieces", []string{"<", "think", ">", "hi", "</", "think>", "ok"}, false,
			Trace{Tokens: 7, Think: 1, After: 1, MarkerTokens: 5, Opened: true, Closed: true}},
		// A piece that holds a marker and text is a marker piece.
		{"markers merged with text", []string{"<think>hi", " there", "</think>ok"}, false,
			Trace{Tokens: 3, Think: 1, MarkerTokens: 2, Opened: true, Closed: true}},
		{"starts inside", []string{"a", "b", "</think>", "c"}, true,
			Trace{Tokens: 4, Think: 2, After: 1, MarkerTokens: 1, Opened: true, Closed: true}},
		{"no block", []string{"a", "</think>", "b"}, false, Trace{Tokens: 3, After: 3}},
		{"preamble", []string{"\n", "<think>", "x", "</think>"}, false,
			Trace{Tokens: 4, Before: 1, Think: 1, MarkerTokens: 2, Opened: true, Closed: true}},
		{"unclosed", []string{"<think>", "x", "</thin"}, false,
			Trace{Tokens: 3, Think: 2, MarkerTokens: 1, Opened: true}},
		{"empty pieces", []string{"", "<think>", "", "x", "</think>", ""}, false,
			Trace{Tokens: 6, Before: 1, Think: 2, After: 1, MarkerTokens: 2, Opened: true, Closed: true}},
	}
	for _, c := range cases {
		got := FromPieces(c.pieces, Markers{StartsInside: c.inside}, FinishStop)
		if got != c.want {
			t.Errorf("%s: %+v\nwant %+v", c.name, got, c.want)
		}
		if got.Tokens != got.Before+got.Think+got.After+got.MarkerTokens {
			t.Errorf("%s: counts do not add up: %+v", c.name, got)
		}
	}
}

func TestSummarizeAndCompare(t *testing.T) {
	dense := Summarize([]Trace{
		{Tokens: 12, Think: 10, Closed: true},
		{Tokens: 1, Think: 0},
		{Tokens: 31, Think: 30, Closed: true},
		{Tokens: 20, Think: 20, Truncated: true},
	})
	want := Summary{N: 4, MeanThink: 15, MedianThink: 15, MeanTokens: 16, ClosedFrac: 0.5, TruncatedFrac: 0.25}
	if dense != want {
		t.Fatalf("dense %+v\nwant  %+v", dense, want)
	}
	pruned := Summarize([]Trace{{Think: 3, Closed: true}, {Think: 30, Truncated: true}, {Think: 12, Truncated: true}})
	if pruned.MedianThink != 12 || pruned.MeanThink != 15 || pruned.TruncatedFrac != 2.0/3 {
		t.Fatalf("pruned %+v", pruned)
	}
	c := Compare(dense, pruned)
	if !c.Defined || c.MeanThink != 0 || c.MedianThink != -0.2 ||
		math.Abs(c.ClosedDelta-(1.0/3-0.5)) > 1e-15 || math.Abs(c.TruncatedDelta-(2.0/3-0.25)) > 1e-15 {
		t.Fatalf("change %+v", c)
	}
	if s := c.String(); s != "+0.0% (median -20.0%)" {
		t.Errorf("String() = %q", s)
	}
	if c := Compare(Summary{N: 2}, pruned); c.Defined || c.String() != "n/a" || c.MeanThink != 0 {
		t.Errorf("change from no reasoning: %+v %q", c, c.String())
	}
	if s := Summarize(nil); s != (Summary{}) {
		t.Errorf("Summarize(nil) = %+v", s)
	}
	if r := RelChange(80, 100); r != 0.25 {
		t.Errorf("RelChange(80, 100) = %v", r)
	}
}

// TestRealTraces measures the assistant turns of the shared R1-style
// reasoning traces, tokenized with Qwen3's tokenizer, where <think> and
// </think> are single added tokens: the think count must equal the token
// count of the text between the markers, the answer count that of the text
// after, and ids and per-token pieces must agree; cutting a trace inside
// its block or starting it inside must shift the counts exactly.
func TestRealTraces(t *testing.T) {
	tok, err := tokenizer.Load(shareddata.Path(t, "tokenizers", "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := MarkersFor(tok, false)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	var traces []Trace
	for line := 1; sc.Scan(); line++ {
		var conv struct {
			Messages []struct{ Role, Content string }
		}
		if err := json.Unmarshal(sc.Bytes(), &conv); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		for _, msg := range conv.Messages {
			if msg.Role != "assistant" || !strings.Contains(msg.Content, "<think>") {
				continue
			}
			before, rest, _ := strings.Cut(msg.Content, "<think>")
			inner, after, ok := strings.Cut(rest, "</think>")
			if !ok {
				t.Fatalf("line %d: an unclosed think block in the data", line)
			}
			ids := tok.Encode(msg.Content, false)
			got, err := FromIDs(ids, m, FinishStop)
			if err != nil {
				t.Fatal(err)
			}
			want := Trace{
				Tokens: len(ids), Before: len(tok.Encode(before, false)),
				Think: len(tok.Encode(inner, false)), After: len(tok.Encode(after, false)),
				MarkerTokens: 2, Opened: true, Closed: true,
			}
			if got != want {
				t.Fatalf("line %d: %+v\nwant %+v", line, got, want)
			}
			pieces := make([]string, len(ids))
			for i, id := range ids {
				pieces[i] = tok.Decode([]int32{id}, false)
			}
			if p := FromPieces(pieces, Markers{}, FinishStop); p != got {
				t.Fatalf("line %d: from pieces %+v, from ids %+v", line, p, got)
			}
			// The prompt holds <think>: generation starts after it.
			in := m
			in.StartsInside = true
			if g, _ := FromIDs(ids[1:], in, FinishStop); g.Think != want.Think || g.After != want.After || g.MarkerTokens != 1 || !g.Closed {
				t.Fatalf("line %d: started inside: %+v", line, g)
			}
			// Cut by the token limit halfway through the thought.
			k := 1 + want.Think/2
			cut, _ := FromIDs(ids[:k], m, FinishLength)
			if cut != (Trace{Tokens: k, Think: k - 1, MarkerTokens: 1, Opened: true, Truncated: true}) {
				t.Fatalf("line %d: cut at %d: %+v", line, k, cut)
			}
			traces = append(traces, got)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	s := Summarize(traces)
	t.Logf("%d assistant turns: think tokens mean %.1f, median %.1f; mean turn %.1f tokens", s.N, s.MeanThink, s.MedianThink, s.MeanTokens)
	// 112 reasoning parts, as the data's README counts them; the lengths
	// are Qwen3's token counts of their text.
	if s.N != 112 || s.MeanThink*112 != 18972 || s.MedianThink != 115 || s.ClosedFrac != 1 || s.TruncatedFrac != 0 {
		t.Fatalf("summary %+v", s)
	}
}

// FuzzPieces cuts a text into pieces at fuzzed points: the counts always
// add up, and a text whose markers each sit in a piece of their own is
// measured as the same ids would be.
func FuzzPieces(f *testing.F) {
	f.Add("<think>\nhmm</think>\n\nok", []byte{3, 1, 4}, false)
	f.Add("a</think>b<think>", []byte{1, 1, 1}, true)
	f.Add("<think><think></think></think>", []byte{7, 7, 8}, false)
	f.Fuzz(func(t *testing.T, text string, cuts []byte, inside bool) {
		var pieces []string
		for _, c := range cuts {
			if len(text) == 0 {
				break
			}
			n := min(int(c)%8+1, len(text))
			pieces = append(pieces, text[:n])
			text = text[n:]
		}
		if text != "" {
			pieces = append(pieces, text)
		}
		m := Markers{StartsInside: inside}
		got := FromPieces(pieces, m, FinishStop)
		if got.Tokens != len(pieces) || got.Tokens != got.Before+got.Think+got.After+got.MarkerTokens {
			t.Fatalf("%q: counts do not add up: %+v", pieces, got)
		}
		if got.Closed && !got.Opened {
			t.Fatalf("%q: closed without opening: %+v", pieces, got)
		}
		// The same generation as ids, each marker piece its own id.
		ids := make([]int32, len(pieces))
		for i, p := range pieces {
			switch p {
			case "<think>":
				ids[i] = openID
			case "</think>":
				ids[i] = closeID
			case "":
				return // an empty piece has no id form
			default:
				if strings.Contains(p, "<") || strings.Contains(p, ">") {
					return // a marker may straddle pieces
				}
				ids[i] = 9
			}
		}
		m.OpenID, m.CloseID = openID, closeID
		if byID, _ := FromIDs(ids, m, FinishStop); byID != got {
			t.Fatalf("%q: pieces %+v, ids %+v", pieces, got, byID)
		}
	})
}
