package textdata

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// The document formats ReadDocuments understands.
const (
	// FormatText is plain UTF-8 text whose documents are the paragraphs
	// between blank lines.
	FormatText = "text"
	// FormatJSONL is one JSON object per line, the document in a string field.
	FormatJSONL = "jsonl"
)

// ReadDocuments reads the documents of the file at path.
//
// Format FormatText: a document is a paragraph, the lines between blank
// (empty or whitespace-only) lines, joined by "\n" and trimmed of surrounding
// whitespace. A line's trailing "\r" is dropped, so CRLF files read like LF
// files. Paragraphs rather than stories are the unit because blank lines are
// all such files offer: in TinyStories they separate stories and also the
// paragraphs inside a story. The file must be valid UTF-8. field must be
// empty.
//
// Format FormatJSONL: each non-blank line is a JSON object whose member field
// is a string; that string, verbatim, is the document.
//
// Errors name the file, and the line where one is at fault.
func ReadDocuments(path, format, field string) ([]string, error) {
	var read func(io.Reader, string, string) ([]string, error)
	switch format {
	case FormatText:
		if field != "" {
			return nil, fmt.Errorf("%s: format %q has no fields, but field %q was given", path, format, field)
		}
		read = readParagraphs
	case FormatJSONL:
		if field == "" {
			return nil, fmt.Errorf("%s: format %q needs the name of the field that holds the text", path, format)
		}
		read = readJSONL
	default:
		return nil, fmt.Errorf("%s: unknown document format %q (want %q or %q)", path, format, FormatText, FormatJSONL)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading documents: %w", err)
	}
	defer f.Close()
	return read(f, path, field)
}

// lines calls fn with each line of r (1-based number, without its "\n" or
// "\r\n"), stopping at fn's first error. Lines may be of any length.
func lines(r io.Reader, path string, fn func(n int, line []byte) error) error {
	br := bufio.NewReaderSize(r, 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if len(line) == 0 && errors.Is(err, io.EOF) {
			return nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if ferr := fn(n, line); ferr != nil {
			return ferr
		}
		if err != nil { // EOF after a final line without "\n"
			return nil
		}
	}
}

func readParagraphs(r io.Reader, path, _ string) ([]string, error) {
	var (
		docs []string
		para strings.Builder
	)
	flush := func() {
		if d := strings.TrimSpace(para.String()); d != "" {
			docs = append(docs, d)
		}
		para.Reset()
	}
	err := lines(r, path, func(n int, line []byte) error {
		if !utf8.Valid(line) {
			return fmt.Errorf("%s:%d: not valid UTF-8", path, n)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			return nil
		}
		if para.Len() > 0 {
			para.WriteByte('\n')
		}
		para.Write(line)
		return nil
	})
	if err != nil {
		return nil, err
	}
	flush()
	return docs, nil
}

func readJSONL(r io.Reader, path, field string) ([]string, error) {
	var docs []string
	err := lines(r, path, func(n int, line []byte) error {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			return nil
		}
		if !json.Valid(line) {
			// Unmarshal's error says what is wrong and at which byte.
			var v any
			return fmt.Errorf("%s:%d: invalid JSON: %w", path, n, json.Unmarshal(line, &v))
		}
		if line[0] != '{' {
			return fmt.Errorf("%s:%d: the line is not a JSON object", path, n)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(line, &obj); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
		raw, ok := obj[field]
		if !ok {
			return fmt.Errorf("%s:%d: the object has no field %q", path, n, field)
		}
		// Checked first because Unmarshal leaves a string untouched for null.
		if raw[0] != '"' {
			return fmt.Errorf("%s:%d: field %q is %s, not a string", path, n, field, jsonKind(raw))
		}
		var doc string
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("%s:%d: field %q: %w", path, n, field, err)
		}
		docs = append(docs, doc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return docs, nil
}

// jsonKind names the JSON type of a valid JSON value.
func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
