package textdata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// The conversation formats ReadConversations understands.
const (
	// FormatChat holds conversations: objects with a "messages" list of
	// {"role", "content", ...} turns (OpenAI / transformers style) or a
	// "conversations" list of {"from", "value"} turns (ShareGPT style), and
	// optionally "tools".
	FormatChat = "chat"
	// FormatInstruction holds Alpaca records: "instruction", optional
	// "input", "output", optional "system".
	FormatInstruction = "instruction"
)

// Conversation is one chat, ready for a chat template.
type Conversation struct {
	// Messages is a JSON array of message objects. Turns in the
	// transformers style are kept verbatim (every field, in the order
	// written) so a template sees exactly what transformers would.
	Messages json.RawMessage
	// Tools is the JSON of the conversation's tool list, or nil. A tools
	// value stored as a JSON string holding JSON is decoded once.
	Tools json.RawMessage
}

// shareGPTRoles maps ShareGPT speakers to chat roles.
var shareGPTRoles = map[string]string{
	"system": "system", "human": "user", "user": "user",
	"gpt": "assistant", "assistant": "assistant", "function_call": "assistant",
	"observation": "tool", "tool": "tool", "function": "tool",
}

// ReadConversations reads the conversations of a file in FormatChat or
// FormatInstruction. The file is JSON lines (one record per non-blank line)
// or, when its first non-space byte is '[', one JSON array of records.
// Errors name the file and the record's line (JSON lines) or index (array).
func ReadConversations(path, format string) ([]Conversation, error) {
	var conv func(rec map[string]json.RawMessage) (Conversation, error)
	switch format {
	case FormatChat:
		conv = chatRecord
	case FormatInstruction:
		conv = instructionRecord
	default:
		return nil, fmt.Errorf("%s: unknown conversation format %q (want %q or %q)", path, format, FormatChat, FormatInstruction)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading conversations: %w", err)
	}
	var out []Conversation
	add := func(where string, raw []byte) error {
		var rec map[string]json.RawMessage
		if err := json.Unmarshal(raw, &rec); err != nil || rec == nil {
			return fmt.Errorf("%s:%s: want a JSON object", path, where)
		}
		c, err := conv(rec)
		if err != nil {
			return fmt.Errorf("%s:%s: %w", path, where, err)
		}
		out = append(out, c)
		return nil
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		var recs []json.RawMessage
		if err := json.Unmarshal(t, &recs); err != nil {
			return nil, fmt.Errorf("%s: not a JSON array of records: %w", path, err)
		}
		for i, r := range recs {
			if err := add(fmt.Sprintf("[%d]", i), r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := add(fmt.Sprint(n), line); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// ParseConversation reads one record of a FormatChat or FormatInstruction
// file (a JSON object, which may span lines), as ReadConversations reads
// each: "tools" given as a JSON string holding JSON is decoded once.
func ParseConversation(raw []byte, format string) (Conversation, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil || rec == nil {
		return Conversation{}, fmt.Errorf("want a JSON object")
	}
	switch format {
	case FormatChat:
		return chatRecord(rec)
	case FormatInstruction:
		return instructionRecord(rec)
	}
	return Conversation{}, fmt.Errorf("unknown conversation format %q (want %q or %q)", format, FormatChat, FormatInstruction)
}

func chatRecord(rec map[string]json.RawMessage) (Conversation, error) {
	var c Conversation
	if raw, ok := rec["tools"]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if strings.TrimSpace(s) != "" {
				if !json.Valid([]byte(s)) {
					return c, fmt.Errorf(`"tools" is a string that does not hold JSON`)
				}
				c.Tools = json.RawMessage(s)
			}
		} else {
			c.Tools = raw
		}
	}
	if raw, ok := rec["messages"]; ok {
		var turns []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &turns); err != nil {
			return c, fmt.Errorf(`"messages" is not a list of objects`)
		}
		for i, t := range turns {
			if err := checkTurn(t, "role", "content", i); err != nil {
				return c, err
			}
		}
		c.Messages = raw
		return c, nil
	}
	if raw, ok := rec["conversations"]; ok {
		var turns []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &turns); err != nil {
			return c, fmt.Errorf(`"conversations" is not a list of objects`)
		}
		msgs := make([]map[string]string, len(turns))
		for i, t := range turns {
			if err := checkTurn(t, "from", "value", i); err != nil {
				return c, err
			}
			var from, value string
			json.Unmarshal(t["from"], &from)
			json.Unmarshal(t["value"], &value)
			role, ok := shareGPTRoles[from]
			if !ok {
				return c, fmt.Errorf(`conversations[%d]: unknown speaker %q`, i, from)
			}
			msgs[i] = map[string]string{"role": role, "content": value}
		}
		c.Messages = mustJSON(msgs)
		return c, nil
	}
	return c, fmt.Errorf(`no "messages" or "conversations" list`)
}

// checkTurn requires string fields role and content in turn i.
func checkTurn(t map[string]json.RawMessage, role, content string, i int) error {
	for _, f := range []string{role, content} {
		raw, ok := t[f]
		if !ok {
			return fmt.Errorf("turn %d lacks %q", i, f)
		}
		var s string
		if json.Unmarshal(raw, &s) != nil && f == role {
			return fmt.Errorf("turn %d: %q is not a string", i, f)
		}
	}
	return nil
}

// instructionRecord turns an Alpaca record into a user and an assistant
// turn. The instruction and a non-empty input are joined by a newline, as
// LLaMA-Factory's alpaca converter does.
func instructionRecord(rec map[string]json.RawMessage) (Conversation, error) {
	get := func(f string, required bool) (string, error) {
		raw, ok := rec[f]
		if !ok || string(raw) == "null" {
			if required {
				return "", fmt.Errorf("record lacks %q", f)
			}
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%q is not a string", f)
		}
		return s, nil
	}
	instr, err := get("instruction", true)
	if err != nil {
		return Conversation{}, err
	}
	input, err := get("input", false)
	if err != nil {
		return Conversation{}, err
	}
	output, err := get("output", true)
	if err != nil {
		return Conversation{}, err
	}
	system, err := get("system", false)
	if err != nil {
		return Conversation{}, err
	}
	user := instr
	if input != "" {
		user += "\n" + input
	}
	var msgs []map[string]string
	if system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": user}, map[string]string{"role": "assistant", "content": output})
	return Conversation{Messages: mustJSON(msgs)}, nil
}

// mustJSON encodes values built here from strings, which cannot fail. Keys
// come out sorted ("content" before "role"); templates index turns by key.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
