package generate

import (
	"strings"
	"unicode/utf8"
)

// contextTokens is how many prompt tokens the incremental detokenizer
// decodes before the continuation, so that the first new token reads as
// it does after the prompt (vLLM's initial offset is 5 as well).
const contextTokens = 5

// streamer turns tokens into text as they come, detects stop sequences in
// it and emits what is safe to show.
//
// Decoding token by token is wrong for byte-level BPE (a character's bytes
// span tokens) and for SentencePiece decoders (a word's leading space
// depends on what precedes it), and decoding everything again each step is
// quadratic. So, as vLLM and text-generation-inference do, it decodes a
// small window twice, without and with the newest tokens, and takes the
// difference once it no longer ends in an incomplete character.
type streamer struct {
	tok   Detokenizer
	ids   []int32 // the prompt's last tokens, then every generated one
	start int     // where the decode window starts
	read  int     // ids[:read] are in text
	text  []byte  // the continuation's text so far (appended to, not copied)
	stops []string
	// maxStop is the longest stop sequence's length; searched is how much
	// of text has been searched for stop sequences (a match may still
	// start in its last maxStop-1 bytes).
	maxStop, searched int
	emit              func(string)
	emitted           int
}

func newStreamer(tok Detokenizer, prompt []int32, stops []string, emit func(string)) *streamer {
	ctxIDs := prompt[max(0, len(prompt)-contextTokens):]
	s := &streamer{tok: tok, ids: append([]int32(nil), ctxIDs...), stops: stops, emit: emit}
	s.read = len(s.ids)
	for _, st := range stops {
		s.maxStop = max(s.maxStop, len(st))
	}
	return s
}

// push adds a generated token; it reports the stop sequence when the text
// now holds one.
func (s *streamer) push(id int32) (string, bool) {
	s.ids = append(s.ids, id)
	prev := s.tok.Decode(s.ids[s.start:s.read])
	cur := s.tok.Decode(s.ids[s.start:])
	if len(cur) <= len(prev) || strings.HasSuffix(cur, string(utf8.RuneError)) {
		return "", false // no new text yet, or a character not complete
	}
	s.text = append(s.text, cur[len(prev):]...)
	s.start, s.read = s.read, len(s.ids)
	return s.advance(false)
}

// flush adds whatever text is still pending (an incomplete character at
// the end decodes as U+FFFD) and emits the rest.
func (s *streamer) flush() (string, bool) {
	if s.read < len(s.ids) {
		prev := s.tok.Decode(s.ids[s.start:s.read])
		if cur := s.tok.Decode(s.ids[s.start:]); len(cur) > len(prev) {
			s.text = append(s.text, cur[len(prev):]...)
		}
		s.read = len(s.ids)
	}
	return s.advance(true)
}

// advance searches the new text for stop sequences and emits what can no
// longer be part of one (everything, when final).
func (s *streamer) advance(final bool) (string, bool) {
	// A match not found before must end in the new text.
	from := max(0, s.searched-max(s.maxStop-1, 0))
	cut, which := CutStop(string(s.text[from:]), s.stops)
	s.searched = len(s.text)
	if which != "" {
		s.emitTo(from + len(cut))
		return which, true
	}
	end := len(s.text)
	if !final {
		end -= s.heldBack()
	}
	s.emitTo(end)
	return "", false
}

// heldBack is the length of the longest end of the text that is the start
// of a stop sequence.
func (s *streamer) heldBack() int {
	for n := min(len(s.text), s.maxStop-1); n > 0; n-- {
		tail := s.text[len(s.text)-n:]
		for _, st := range s.stops {
			if strings.HasPrefix(st, string(tail)) {
				return n
			}
		}
	}
	return 0
}

func (s *streamer) emitTo(end int) {
	if s.emit != nil && end > s.emitted {
		s.emit(string(s.text[s.emitted:end]))
	}
	s.emitted = max(s.emitted, end)
}
