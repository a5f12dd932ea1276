package api

import (
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

// tokenizer reads the tokens of a JSON text held in memory, as
// encoding/json's Decoder.Token does with UseNumber (delimiters, strings,
// json.Number, bools, nil for null; commas and colons checked and skipped),
// without its cost: Decoder.Token decodes every scalar through reflection.
// A batch query is a thousand of them.
type tokenizer struct {
	b     []byte
	i     int
	stack []byte // the open containers, '[' or '{'
	state tokState
}

type tokState uint8

const (
	tokTop         tokState = iota // a value may start, at the top
	tokArrayStart                  // after [
	tokArrayValue                  // after a comma in an array
	tokArrayComma                  // after a value in an array
	tokObjectStart                 // after {
	tokObjectKey                   // after a comma in an object
	tokObjectColon                 // after a key
	tokObjectValue                 // after a colon
	tokObjectComma                 // after a value in an object
)

// syntaxError is malformed JSON at a byte offset.
type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.offset) }

func (t *tokenizer) fail(msg string) error { return &syntaxError{offset: t.i, msg: msg} }

func (t *tokenizer) skipSpace() {
	for t.i < len(t.b) {
		switch t.b[t.i] {
		case ' ', '\t', '\n', '\r':
			t.i++
		default:
			return
		}
	}
}

// More reports whether the current array or object has another element.
func (t *tokenizer) More() bool {
	t.skipSpace()
	return t.i < len(t.b) && t.b[t.i] != ']' && t.b[t.i] != '}'
}

// InputOffset is how many bytes have been read.
func (t *tokenizer) InputOffset() int64 { return int64(t.i) }

func (t *tokenizer) valueAllowed() bool {
	switch t.state {
	case tokTop, tokArrayStart, tokArrayValue, tokObjectValue:
		return true
	case tokArrayComma, tokObjectStart, tokObjectKey, tokObjectColon, tokObjectComma:
		// A comma, key or colon is due, or a key where an object starts.
		return false
	}
	return false
}

func (t *tokenizer) afterValue() {
	switch {
	case len(t.stack) == 0:
		t.state = tokTop
	case t.stack[len(t.stack)-1] == '[':
		t.state = tokArrayComma
	default:
		t.state = tokObjectComma
	}
}

// Token returns the next token, io.EOF at the end of the input.
func (t *tokenizer) Token() (json.Token, error) {
	for {
		t.skipSpace()
		if t.i >= len(t.b) {
			return nil, io.EOF
		}
		c := t.b[t.i]
		switch c {
		case '[', '{':
			if !t.valueAllowed() {
				return nil, t.fail("unexpected " + string(c))
			}
			t.i++
			t.stack = append(t.stack, c)
			t.state = tokArrayStart
			if c == '{' {
				t.state = tokObjectStart
			}
			return json.Delim(c), nil
		case ']':
			if t.state != tokArrayStart && t.state != tokArrayComma {
				return nil, t.fail("unexpected ]")
			}
			t.i++
			t.stack = t.stack[:len(t.stack)-1]
			t.afterValue()
			return json.Delim(c), nil
		case '}':
			if t.state != tokObjectStart && t.state != tokObjectComma {
				return nil, t.fail("unexpected }")
			}
			t.i++
			t.stack = t.stack[:len(t.stack)-1]
			t.afterValue()
			return json.Delim(c), nil
		case ':':
			if t.state != tokObjectColon {
				return nil, t.fail("unexpected :")
			}
			t.i++
			t.state = tokObjectValue
			continue
		case ',':
			switch t.state {
			case tokArrayComma:
				t.state = tokArrayValue
			case tokObjectComma:
				t.state = tokObjectKey
			default:
				return nil, t.fail("unexpected ,")
			}
			t.i++
			continue
		case '"':
			key := t.state == tokObjectStart || t.state == tokObjectKey
			if !key && !t.valueAllowed() {
				return nil, t.fail("unexpected string")
			}
			s, err := t.str()
			if err != nil {
				return nil, err
			}
			if key {
				t.state = tokObjectColon
			} else {
				t.afterValue()
			}
			return s, nil
		}
		if !t.valueAllowed() {
			return nil, t.fail("unexpected " + fmt.Sprintf("%q", c))
		}
		v, err := t.scalar()
		if err != nil {
			return nil, err
		}
		t.afterValue()
		return v, nil
	}
}

// scalar reads a number, true, false or null.
func (t *tokenizer) scalar() (json.Token, error) {
	for _, lit := range [...]struct {
		text string
		v    json.Token
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if t.b[t.i] != lit.text[0] {
			continue
		}
		n := min(len(lit.text), len(t.b)-t.i)
		if string(t.b[t.i:t.i+n]) != lit.text[:n] {
			return nil, t.fail("invalid literal")
		}
		if n < len(lit.text) {
			return nil, io.ErrUnexpectedEOF
		}
		t.i += n
		return lit.v, nil
	}
	start := t.i
	digits := func() int {
		n := 0
		for t.i < len(t.b) && '0' <= t.b[t.i] && t.b[t.i] <= '9' {
			t.i++
			n++
		}
		return n
	}
	if t.b[t.i] == '-' {
		t.i++
	}
	switch {
	case t.i < len(t.b) && t.b[t.i] == '0':
		t.i++
	case digits() == 0:
		return nil, t.eofOr("invalid number")
	}
	if t.i < len(t.b) && t.b[t.i] == '.' {
		t.i++
		if digits() == 0 {
			return nil, t.eofOr("invalid number")
		}
	}
	if t.i < len(t.b) && (t.b[t.i] == 'e' || t.b[t.i] == 'E') {
		t.i++
		if t.i < len(t.b) && (t.b[t.i] == '+' || t.b[t.i] == '-') {
			t.i++
		}
		if digits() == 0 {
			return nil, t.eofOr("invalid number")
		}
	}
	return json.Number(t.b[start:t.i]), nil
}

func (t *tokenizer) eofOr(msg string) error {
	if t.i >= len(t.b) {
		return io.ErrUnexpectedEOF
	}
	return t.fail(msg)
}

// str reads a string; invalid UTF-8 becomes U+FFFD, as encoding/json has it.
func (t *tokenizer) str() (string, error) {
	t.i++ // "
	start := t.i
	for t.i < len(t.b) {
		c := t.b[t.i]
		if c == '"' {
			s := string(t.b[start:t.i])
			t.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		t.i++
	}
	out := append([]byte(nil), t.b[start:t.i]...)
	for t.i < len(t.b) {
		c := t.b[t.i]
		switch {
		case c == '"':
			t.i++
			return string(out), nil
		case c < 0x20:
			return "", t.fail("control character in string")
		case c == '\\':
			if t.i+1 >= len(t.b) {
				return "", io.ErrUnexpectedEOF
			}
			e := t.b[t.i+1]
			t.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := t.hex4()
				if !ok {
					return "", t.eofOr("invalid escape")
				}
				if utf16.IsSurrogate(r) {
					// A low surrogate must follow, escaped; else U+FFFD.
					save := t.i
					if t.i+1 < len(t.b) && t.b[t.i] == '\\' && t.b[t.i+1] == 'u' {
						t.i += 2
						if r2, ok := t.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								continue
							}
						}
					}
					t.i = save
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				t.i--
				return "", t.fail("invalid escape")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			t.i++
		default:
			r, size := utf8.DecodeRune(t.b[t.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, t.b[t.i:t.i+size]...)
			}
			t.i += size
		}
	}
	return "", io.ErrUnexpectedEOF
}

// hex4 reads the four hex digits of a \u escape.
func (t *tokenizer) hex4() (rune, bool) {
	if t.i+4 > len(t.b) {
		t.i = len(t.b)
		return 0, false
	}
	var r rune
	for _, c := range t.b[t.i : t.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	t.i += 4
	return r, true
}
