package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// tokens reads every token of b with next, stopping at the first error:
// io.EOF at the end, "syntax" for anything else.
func tokens(next func() (json.Token, error)) ([]json.Token, string) {
	var out []json.Token
	for len(out) < 10000 {
		tok, err := next()
		switch {
		case errors.Is(err, io.EOF):
			return out, "eof"
		case err != nil:
			return out, "error"
		}
		out = append(out, tok)
	}
	return out, "long"
}

func stdTokens(b []byte) ([]json.Token, string) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return tokens(d.Token)
}

func ourTokens(b []byte) ([]json.Token, string) {
	t := &tokenizer{b: b}
	return tokens(t.Token)
}

var tokenCases = []string{
	`{"lines":[{"sku":"A-1","location":"DC1","quantity":3},{"sku":"B","group":"G","quantity":12,"channel":"web"}]}`,
	`{"a":"\u00e9\ud83d\ude00\ud800x\\\"\/\b\f\n\r\t","b":[true,false,null,-0.5e+10,0,12]}`,
	"{\"a\":\"\xff\xfe bad utf-8 \xc3\"}",
	`[1,2,]`, `{"a":1,}`, `{"a" 1}`, `{"a":}`, `[01]`, `{"a":1}{}`, `"x"  `, `  `, `{`, `["abc`, `[tru`, `[nul]`, `[-]`, `[1.]`, `[1e]`,
	`{"a":"\x"}`, "[\"a\x01\"]", `{1:2}`, `[1:2]`, `{"a",}`, `]`, `}`, `[}`, `{]`,
}

// The tokenizer reads what encoding/json reads: the same tokens, and an
// error where it has one (the error's wording and offset may differ).
func TestTokenizerAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range tokenCases {
		want, wantEnd := stdTokens([]byte(c))
		got, gotEnd := ourTokens([]byte(c))
		if !reflect.DeepEqual(got, want) || gotEnd != wantEnd {
			t.Errorf("%q:\n got %v %s\nwant %v %s", c, got, gotEnd, want, wantEnd)
		}
	}
}

func FuzzTokenizer(f *testing.F) {
	for _, c := range tokenCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantEnd := stdTokens(b)
		got, gotEnd := ourTokens(b)
		if !reflect.DeepEqual(got, want) || gotEnd != wantEnd {
			t.Fatalf("%q:\n got %v %s\nwant %v %s", b, got, gotEnd, want, wantEnd)
		}
	})
}
