package chattemplate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind classifies lexer tokens. Data is template text outside tags;
// the remaining kinds occur inside {{ }} and {% %}.
type tokKind int

const (
	tokData tokKind = iota
	tokVarBegin
	tokVarEnd
	tokBlockBegin
	tokBlockEnd
	tokName
	tokString
	tokInt
	tokFloat
	tokOp
	tokEOF
)

var tokNames = [...]string{"text", "'{{'", "'}}'", "'{%'", "'%}'", "name", "string", "integer", "float", "operator", "end of template"}

func (k tokKind) String() string { return tokNames[k] }

type pos struct{ line, col int }

func (p pos) String() string { return fmt.Sprintf("%d:%d", p.line, p.col) }

type token struct {
	kind tokKind
	val  string // decoded value for strings, raw text otherwise
	pos  pos
}

func (t token) String() string {
	switch t.kind {
	case tokName, tokOp, tokInt, tokFloat:
		return fmt.Sprintf("'%s'", t.val)
	case tokString:
		return "string"
	}
	return t.kind.String()
}

// lexer implements Jinja2's lexer with the environment Hugging Face uses
// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False).
type lexer struct {
	src  string
	i    int
	line int
	col  int
	toks []token
	// lineStarting mirrors Jinja2: lstrip_blocks also strips indentation
	// when the preceding text has no newline but the previous token ended
	// one (e.g. a trimmed "%}\n").
	lineStarting bool
}

// normalizeSource mirrors Jinja2: all newline styles become "\n" and
// one trailing newline is dropped (keep_trailing_newline=False).
func normalizeSource(src string) string {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	return strings.TrimSuffix(src, "\n")
}

// isPySpace reports whether Python's str.isspace (and re's \s) treats r
// as whitespace; Python also counts the separators U+001C..U+001F.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

func lex(src string) ([]token, error) {
	l := &lexer{src: normalizeSource(src), line: 1, col: 1, lineStarting: true}
	if err := l.run(); err != nil {
		return nil, err
	}
	return l.toks, nil
}

func (l *lexer) here() pos { return pos{l.line, l.col} }

// advance moves over n bytes, keeping line and column (in runes) current.
func (l *lexer) advance(n int) {
	for _, r := range l.src[l.i : l.i+n] {
		if r == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
	}
	l.i += n
}

func (l *lexer) errorf(p pos, format string, args ...any) error {
	return &SyntaxError{Line: p.line, Col: p.col, Msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) run() error {
	for l.i < len(l.src) {
		rest := l.src[l.i:]
		at := nextTagStart(rest)
		if at < 0 {
			l.emitData(rest, l.here())
			l.advance(len(rest))
			break
		}
		text := rest[:at]
		kind := rest[at+1]
		sign := byte(0)
		if at+2 < len(rest) && (rest[at+2] == '-' || rest[at+2] == '+') {
			sign = rest[at+2]
		}
		kept := text
		if sign == '-' {
			kept = strings.TrimRightFunc(text, isPySpace)
		} else if sign != '+' && kind != '{' {
			// lstrip_blocks: drop indentation between a line start and a
			// block or comment tag.
			lpos := strings.LastIndexByte(text, '\n') + 1
			if lpos > 0 || l.lineStarting {
				tail := text[lpos:]
				if tail != "" && strings.TrimLeftFunc(tail, isPySpace) == "" {
					kept = text[:lpos]
				}
			}
		}
		l.emitData(kept, l.here())
		l.advance(at)
		tagStart := l.here()
		open := 2
		if sign != 0 {
			open = 3
		}
		l.advance(open)
		l.lineStarting = false
		var err error
		switch kind {
		case '#':
			err = l.comment(tagStart)
		case '{':
			l.toks = append(l.toks, token{kind: tokVarBegin, pos: tagStart})
			err = l.inside('}', tokVarEnd, tagStart)
		case '%':
			if l.rawBlock(tagStart) {
				continue
			}
			l.toks = append(l.toks, token{kind: tokBlockBegin, pos: tagStart})
			err = l.inside('%', tokBlockEnd, tagStart)
		}
		if err != nil {
			return err
		}
	}
	l.toks = append(l.toks, token{kind: tokEOF, pos: l.here()})
	return nil
}

func (l *lexer) emitData(s string, p pos) {
	if s != "" {
		l.toks = append(l.toks, token{kind: tokData, val: s, pos: p})
	}
}

// nextTagStart finds the next "{{", "{%" or "{#".
func nextTagStart(s string) int {
	off := 0
	for {
		j := strings.IndexByte(s[off:], '{')
		if j < 0 || off+j+1 >= len(s) {
			return -1
		}
		switch s[off+j+1] {
		case '{', '%', '#':
			return off + j
		}
		off += j + 1
	}
}

// closeTag consumes a tag end ("-X}", "+X}" or "X}") if one starts at the
// cursor, applying whitespace control and trim_blocks.
func (l *lexer) closeTag(c byte, trim bool) bool {
	rest := l.src[l.i:]
	var n int
	var sign byte
	switch {
	case len(rest) >= 3 && (rest[0] == '-' || rest[0] == '+') && rest[1] == c && rest[2] == '}':
		n, sign = 3, rest[0]
	case len(rest) >= 2 && rest[0] == c && rest[1] == '}':
		n = 2
	default:
		return false
	}
	l.advance(n)
	consumed := ""
	switch {
	case sign == '-':
		after := l.src[l.i:]
		k := len(after) - len(strings.TrimLeftFunc(after, isPySpace))
		consumed = after[:k]
		l.advance(k)
	case sign == 0 && trim && strings.HasPrefix(l.src[l.i:], "\n"):
		consumed = "\n"
		l.advance(1)
	}
	l.lineStarting = strings.HasSuffix(consumed, "\n")
	return true
}

func (l *lexer) comment(start pos) error {
	for l.i < len(l.src) {
		if l.closeTag('#', true) {
			return nil
		}
		_, n := utf8.DecodeRuneInString(l.src[l.i:])
		l.advance(n)
	}
	return l.errorf(start, "missing end of comment tag")
}

// rawBlock handles {% raw %}...{% endraw %}: the body is emitted as text.
func (l *lexer) rawBlock(start pos) bool {
	rest := l.src[l.i:]
	body := strings.TrimLeftFunc(rest, isPySpace)
	if !strings.HasPrefix(body, "raw") {
		return false
	}
	body = strings.TrimLeftFunc(body[3:], isPySpace)
	sign := byte(0)
	if body != "" && (body[0] == '-' || body[0] == '+') {
		sign = body[0]
		body = body[1:]
	}
	if !strings.HasPrefix(body, "%}") {
		return false
	}
	l.advance(len(rest) - len(body) + 2)
	if sign == '-' {
		after := l.src[l.i:]
		l.advance(len(after) - len(strings.TrimLeftFunc(after, isPySpace)))
	} else if sign == 0 && strings.HasPrefix(l.src[l.i:], "\n") {
		l.advance(1)
	}
	// Find "{%[-+]? endraw [-+]?%}".
	off := l.i
	for {
		j := strings.Index(l.src[off:], "{%")
		if j < 0 {
			l.emitData(l.src[l.i:], l.here())
			l.advance(len(l.src) - l.i)
			return true
		}
		tag := l.src[off+j+2:]
		strip := false
		if tag != "" && (tag[0] == '-' || tag[0] == '+') {
			strip = tag[0] == '-'
			tag = tag[1:]
		}
		t := strings.TrimLeftFunc(tag, isPySpace)
		if strings.HasPrefix(t, "endraw") {
			t = strings.TrimLeftFunc(t[6:], isPySpace)
			endSign := byte(0)
			if t != "" && (t[0] == '-' || t[0] == '+') {
				endSign = t[0]
				t = t[1:]
			}
			if strings.HasPrefix(t, "%}") {
				text := l.src[l.i : off+j]
				if strip {
					text = strings.TrimRightFunc(text, isPySpace)
				}
				l.emitData(text, l.here())
				l.advance(len(l.src) - l.i - len(t) + 2)
				consumed := ""
				if endSign == '-' {
					after := l.src[l.i:]
					k := len(after) - len(strings.TrimLeftFunc(after, isPySpace))
					consumed = after[:k]
					l.advance(k)
				} else if endSign == 0 && strings.HasPrefix(l.src[l.i:], "\n") {
					consumed = "\n"
					l.advance(1)
				}
				l.lineStarting = strings.HasSuffix(consumed, "\n")
				return true
			}
		}
		off += j + 2
	}
}

var ops2 = []string{"//", "**", "==", "!=", "<=", ">="}

const ops1 = "+-/*%~<>=()[]{}.,:|;"

// inside lexes the expression tokens of a {{ }} or {% %} tag.
func (l *lexer) inside(c byte, end tokKind, start pos) error {
	var brackets []byte
	for {
		// Skip whitespace.
		rest := l.src[l.i:]
		l.advance(len(rest) - len(strings.TrimLeftFunc(rest, isPySpace)))
		if l.i >= len(l.src) {
			return l.errorf(start, "unexpected end of template: tag opened here was never closed")
		}
		p := l.here()
		if len(brackets) == 0 && l.closeTag(c, end == tokBlockEnd) {
			l.toks = append(l.toks, token{kind: end, pos: p})
			return nil
		}
		rest = l.src[l.i:]
		r, _ := utf8.DecodeRuneInString(rest)
		switch {
		case r == '\'' || r == '"':
			s, n, err := lexString(rest)
			if err != nil {
				return l.errorf(p, "%v", err)
			}
			l.toks = append(l.toks, token{kind: tokString, val: s, pos: p})
			l.advance(n)
		case r >= '0' && r <= '9':
			kind, n := lexNumber(rest)
			l.toks = append(l.toks, token{kind: kind, val: strings.ReplaceAll(rest[:n], "_", ""), pos: p})
			l.advance(n)
		case r == '_' || unicode.IsLetter(r):
			n := 0
			for n < len(rest) {
				r, sz := utf8.DecodeRuneInString(rest[n:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				n += sz
			}
			l.toks = append(l.toks, token{kind: tokName, val: rest[:n], pos: p})
			l.advance(n)
		default:
			op := ""
			for _, o := range ops2 {
				if strings.HasPrefix(rest, o) {
					op = o
					break
				}
			}
			if op == "" && strings.IndexByte(ops1, rest[0]) >= 0 {
				op = rest[:1]
			}
			if op == "" {
				return l.errorf(p, "unexpected character %q", r)
			}
			switch op {
			case "(", "[", "{":
				brackets = append(brackets, op[0])
			case ")", "]", "}":
				want := map[string]byte{")": '(', "]": '[', "}": '{'}[op]
				if len(brackets) == 0 || brackets[len(brackets)-1] != want {
					return l.errorf(p, "unexpected '%s'", op)
				}
				brackets = brackets[:len(brackets)-1]
			}
			l.toks = append(l.toks, token{kind: tokOp, val: op, pos: p})
			l.advance(len(op))
		}
	}
}

// lexNumber scans an integer or float literal with Jinja2's syntax
// (digits with "_" separators, optional fraction and exponent).
func lexNumber(s string) (tokKind, int) {
	digits := func(i int) int {
		j := i
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || (s[j] == '_' && j > i && j+1 < len(s) && s[j+1] >= '0' && s[j+1] <= '9')) {
			j++
		}
		return j
	}
	n := digits(0)
	kind := tokInt
	if n+1 < len(s) && s[n] == '.' && s[n+1] >= '0' && s[n+1] <= '9' {
		n = digits(n + 1)
		kind = tokFloat
	}
	if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
		j := n + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			n = digits(j)
			kind = tokFloat
		}
	}
	return kind, n
}

// lexString decodes a quoted literal the way Jinja2 does (Python
// "unicode-escape" rules; unknown escapes keep their backslash).
func lexString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	i := 1
	for i < len(s) {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			e := s[i+1]
			i += 2
			switch e {
			case '\n':
			case '\\', '\'', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'v':
				b.WriteByte('\v')
			case 'a':
				b.WriteByte('\a')
			case 'x', 'u', 'U':
				n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
				if i+n > len(s) {
					return "", 0, fmt.Errorf("truncated \\%c escape in string literal", e)
				}
				var r rune
				for _, h := range s[i : i+n] {
					d := unhex(h)
					if d < 0 {
						return "", 0, fmt.Errorf("invalid \\%c escape in string literal", e)
					}
					r = r*16 + rune(d)
				}
				b.WriteRune(r)
				i += n
			case '0', '1', '2', '3', '4', '5', '6', '7':
				r := rune(e - '0')
				for k := 0; k < 2 && i < len(s) && s[i] >= '0' && s[i] <= '7'; k++ {
					r = r*8 + rune(s[i]-'0')
					i++
				}
				b.WriteRune(r)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, fmt.Errorf("unterminated string literal")
}

func unhex(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r >= 'a' && r <= 'f':
		return int(r-'a') + 10
	case r >= 'A' && r <= 'F':
		return int(r-'A') + 10
	}
	return -1
}
