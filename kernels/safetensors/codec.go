package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header. A length prefix above it is refused
// before anything is allocated, so a hostile file cannot make a reader
// reserve gigabytes. (The Rust reference uses 100 MB; real headers of
// thousand-tensor checkpoints are a few hundred KiB.)
const MaxHeaderSize = 100 << 20

const metadataKey = "__metadata__"

// File is a set of tensors decoded from one safetensors buffer, either in
// memory (Decode) or mapped from disk (Open). Its tensors alias that buffer.
type File struct {
	// Metadata is the header's free-form "__metadata__" string map; nil when
	// the header has none.
	Metadata map[string]string

	path    string   // file the tensors came from; "" for Decode
	tensors []Tensor // in data-offset order
	byName  map[string]int
	mapping []byte // the memory map to release on Close; nil for Decode
}

// Tensor returns the named tensor. Its Data aliases the file's buffer and
// must not be modified (for a mapped file, writing to it faults).
func (f *File) Tensor(name string) (Tensor, bool) {
	i, ok := f.byName[name]
	if !ok {
		return Tensor{}, false
	}
	return f.tensors[i], true
}

// Names returns the tensor names in the order their bytes appear.
func (f *File) Names() []string {
	names := make([]string, len(f.tensors))
	for i, t := range f.tensors {
		names[i] = t.Name
	}
	return names
}

// Tensors returns every tensor in the order its bytes appear.
func (f *File) Tensors() []Tensor { return slices.Clone(f.tensors) }

// Path returns the file the tensors were read from, or "" for Decode.
func (f *File) Path() string { return f.path }

// Encode serializes tensors, in the order given, with optional metadata. The
// output is what the reference implementation writes for the same order:
// compact JSON, "__metadata__" first (omitted when empty, keys sorted so the
// bytes are deterministic), the header padded with spaces to a multiple of 8
// so that the data buffer starts 8-byte aligned.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	hdr, dataLen, err := encodeHeader(tensors, metadata)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 8, 8+len(hdr)+int(dataLen))
	binary.LittleEndian.PutUint64(out, uint64(len(hdr)))
	out = append(out, hdr...)
	for _, t := range tensors {
		out = append(out, t.Data...)
	}
	return out, nil
}

// Write streams the encoding of tensors to w without building it in memory
// first, so writing a multi-gigabyte checkpoint needs no second copy.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr, _, err := encodeHeader(tensors, metadata)
	if err != nil {
		return err
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(hdr)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// encodeHeader validates the tensors and returns the padded JSON header and
// the total size of the data buffer.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, uint64, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		writeString(&b, metadataKey)
		b.WriteString(":{")
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(&b, k)
			b.WriteByte(':')
			writeString(&b, metadata[k])
		}
		b.WriteByte('}')
		first = false
	}
	seen := make(map[string]bool, len(tensors))
	var off uint64
	for _, t := range tensors {
		if t.Name == metadataKey || t.Name == "" {
			return nil, 0, &FormatError{Tensor: t.Name, Msg: "reserved or empty tensor name"}
		}
		if seen[t.Name] {
			return nil, 0, &FormatError{Tensor: t.Name, Msg: "duplicate tensor name"}
		}
		seen[t.Name] = true
		if err := t.check(); err != nil {
			return nil, 0, err
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(&b, t.Name)
		b.WriteString(`:{"dtype":`)
		writeString(&b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for i, d := range t.Shape {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		end := off + uint64(len(t.Data))
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, 0, &FormatError{Msg: fmt.Sprintf("header of %d bytes exceeds the %d-byte limit", b.Len(), MaxHeaderSize)}
	}
	return b.Bytes(), off, nil
}

// writeString writes s as a JSON string the way serde_json does: no HTML
// escaping, so names with '<' or '&' produce the same bytes as the reference.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // cannot fail for a string
	b.Truncate(b.Len() - 1)
}

// Decode parses a safetensors buffer. The returned tensors alias b, so b must
// stay unmodified while they are in use. Every structural rule of the format
// is checked: the header must be a JSON object of known dtypes whose byte
// ranges tile the data buffer exactly, without gaps or overlaps.
func Decode(b []byte) (*File, error) {
	return decode(b, "")
}

type entry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end uint64
}

func decode(b []byte, path string) (*File, error) {
	fail := func(tensor, format string, args ...any) error {
		return &FormatError{File: path, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < 8 {
		return nil, fail("", "%d bytes is too short for the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeaderSize {
		return nil, fail("", "header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, fail("", "header length %d exceeds the %d bytes after the length prefix", n, len(b)-8)
	}
	hdr := b[8 : 8+n]
	data := b[8+n:]
	entries, meta, err := parseHeader(hdr)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.File = path
		}
		return nil, err
	}

	// Tensors may be listed in any order in the JSON object; sorted by
	// offset they must cover the data buffer exactly once.
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].begin != entries[j].begin {
			return entries[i].begin < entries[j].begin
		}
		return entries[i].end < entries[j].end
	})
	f := &File{Metadata: meta, path: path, tensors: make([]Tensor, len(entries)), byName: make(map[string]int, len(entries))}
	var pos uint64
	prev := ""
	for i, e := range entries {
		switch {
		case e.end < e.begin:
			return nil, fail(e.name, "data_offsets [%d,%d] end before they begin", e.begin, e.end)
		case e.end > uint64(len(data)):
			return nil, fail(e.name, "data_offsets [%d,%d] run past the %d-byte data buffer", e.begin, e.end, len(data))
		case e.begin < pos:
			return nil, fail(e.name, "data_offsets [%d,%d] overlap tensor %q, which ends at %d", e.begin, e.end, prev, pos)
		case e.begin > pos && prev == "":
			return nil, fail(e.name, "data_offsets [%d,%d] leave bytes [0,%d) unused: the first tensor must start at 0", e.begin, e.end, e.begin)
		case e.begin > pos:
			return nil, fail(e.name, "data_offsets [%d,%d] leave a gap after tensor %q, which ends at %d", e.begin, e.end, prev, pos)
		}
		size, ok := byteSize(e.shape, e.dtype)
		if !ok || size != e.end-e.begin {
			return nil, fail(e.name, "shape %v of %s is %d bytes but data_offsets [%d,%d] hold %d", e.shape, e.dtype, size, e.begin, e.end, e.end-e.begin)
		}
		// The capacity limit keeps an append on one tensor's Data from
		// overwriting the next tensor's bytes.
		f.tensors[i] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
		f.byName[e.name] = i
		pos, prev = e.end, e.name
	}
	if pos != uint64(len(data)) {
		return nil, fail("", "tensors cover %d bytes of the %d-byte data buffer; trailing bytes are not allowed", pos, len(data))
	}
	return f, nil
}

// parseHeader reads the JSON header token by token: encoding/json would
// silently keep the last of two entries with the same name, and a duplicate
// is exactly the kind of ambiguity a hostile file would use.
func parseHeader(hdr []byte) ([]entry, map[string]string, error) {
	bad := func(tensor, msg string, err error) error {
		return &FormatError{Tensor: tensor, Msg: msg, Err: err}
	}
	if !utf8.Valid(hdr) {
		return nil, nil, bad("", "header is not valid UTF-8", nil)
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, nil, bad("", "header does not start with '{'", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil {
		return nil, nil, bad("", "header is not valid JSON", err)
	}
	var (
		entries []entry
		meta    map[string]string
		seen    = make(map[string]bool)
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad("", "header is not valid JSON", err)
		}
		name, _ := tok.(string) // object keys are always strings
		if seen[name] {
			return nil, nil, bad(name, "duplicate entry in header", nil)
		}
		seen[name] = true
		if name == metadataKey {
			if err := dec.Decode(&meta); err != nil {
				return nil, nil, bad("", "__metadata__ is not a map of strings to strings", err)
			}
			continue
		}
		var raw map[string]json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, bad(name, "header entry is not a JSON object", err)
		}
		e, err := parseEntry(name, raw)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, bad("", "header is not valid JSON", err)
	}
	// Only whitespace (the alignment padding) may follow the object.
	rest := hdr[dec.InputOffset():]
	if len(bytes.TrimLeft(rest, " \t\r\n")) != 0 {
		return nil, nil, bad("", "header has data after the JSON object", nil)
	}
	return entries, meta, nil
}

func parseEntry(name string, raw map[string]json.RawMessage) (entry, error) {
	bad := func(msg string, err error) error {
		return &FormatError{Tensor: name, Msg: msg, Err: err}
	}
	e := entry{name: name}
	for _, field := range []string{"dtype", "shape", "data_offsets"} {
		if _, ok := raw[field]; !ok {
			return e, bad("missing field "+strconv.Quote(field), nil)
		}
	}
	var dt string
	if err := json.Unmarshal(raw["dtype"], &dt); err != nil {
		return e, bad("dtype is not a string", err)
	}
	e.dtype = DType(dt)
	if !e.dtype.Valid() {
		return e, bad(fmt.Sprintf("unknown dtype %q", dt), nil)
	}
	var shape []uint64
	if err := json.Unmarshal(raw["shape"], &shape); err != nil || shape == nil {
		return e, bad("shape is not a list of non-negative integers", err)
	}
	e.shape = make([]int, len(shape))
	for i, d := range shape {
		if d > math.MaxInt64 {
			return e, bad(fmt.Sprintf("dimension %d is too large", d), nil)
		}
		e.shape[i] = int(d)
	}
	var offs []uint64
	if err := json.Unmarshal(raw["data_offsets"], &offs); err != nil || len(offs) != 2 {
		return e, bad("data_offsets is not a pair of non-negative integers", err)
	}
	e.begin, e.end = offs[0], offs[1]
	return e, nil
}
