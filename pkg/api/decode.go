package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// decodeBody reads a JSON request body into v, strictly: the body must be
// sent as application/json; member names match exactly (case-sensitive),
// each at most once, and a member v does not have is refused; a problem
// names its field with indices (lines[0].quantity) and the JSON type
// expected, never a Go type; nothing may follow the value. No member may
// be null, and an optional string member (tagged omitempty) is left out,
// never sent empty: the contract has neither.
func decodeBody(c echo.Context, v any) error {
	if err := requireJSON(c.Request()); err != nil {
		return err
	}
	d := &decoder{dec: &tokenizer{}}
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return d.readError(err)
	}
	d.dec.b = b
	tok, err := d.dec.Token()
	if errors.Is(err, io.EOF) {
		return badRequest("", "the body is empty")
	}
	if err != nil {
		return d.readError(err)
	}
	if err := d.fill(reflect.ValueOf(v).Elem(), tok, ""); err != nil {
		return err
	}
	if _, err := d.dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return d.readError(err)
		}
		return badRequest("", "the body holds more than one JSON value")
	}
	return nil
}

// requireJSON refuses a body not sent as application/json (UTF-8, the only
// charset JSON has).
func requireJSON(req *http.Request) error {
	ct := req.Header.Get(echo.HeaderContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == echo.MIMEApplicationJSON {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	return &problemError{Problem{Type: "about:blank", Title: "unsupported media type", Status: http.StatusUnsupportedMediaType,
		Detail: fmt.Sprintf("send the body as Content-Type: application/json, not %s", excerpt(ct)), Field: echo.HeaderContentType}}
}

// decoder fills structs, slices, strings, integers and pointers to them
// from a stream of JSON tokens; it is all the request bodies need.
type decoder struct {
	dec *tokenizer
}

func (d *decoder) value(v reflect.Value, path string) error {
	tok, err := d.dec.Token()
	if err != nil {
		return d.readError(err)
	}
	return d.fill(v, tok, path)
}

// fill sets v from the value that starts with tok, which may not be null.
func (d *decoder) fill(v reflect.Value, tok json.Token, path string) error {
	if tok == nil {
		return mismatch(path, jsonType(v.Type()), tok)
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := d.fill(p.Elem(), tok, path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		if tok != json.Delim('{') {
			return mismatch(path, "an object", tok)
		}
		fields := jsonFields(v.Type())
		seen := map[string]bool{}
		for d.dec.More() {
			kt, err := d.dec.Token()
			if err != nil {
				return d.readError(err)
			}
			name, _ := kt.(string)
			if len(name) > maxQuoted {
				return badRequest(join(path, shorten(name)), fmt.Sprintf("unknown field %s", excerpt(name)))
			}
			fp := join(path, name)
			if seen[name] {
				return badRequest(fp, "the field appears twice")
			}
			seen[name] = true
			f, ok := fields[name]
			if !ok {
				return badRequest(fp, "unknown field")
			}
			fv := v.Field(f.index)
			if err := d.value(fv, fp); err != nil {
				return err
			}
			if f.omitEmpty && fv.Kind() == reflect.String && fv.Len() == 0 {
				return badRequest(fp, "must not be empty; leave the field out instead")
			}
		}
		return d.end()
	case reflect.Slice:
		if tok != json.Delim('[') {
			return mismatch(path, "an array", tok)
		}
		s := reflect.MakeSlice(v.Type(), 0, 0)
		for i := 0; d.dec.More(); i++ {
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.value(e, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
			s = reflect.Append(s, e)
		}
		v.Set(s)
		return d.end()
	case reflect.String:
		s, ok := tok.(string)
		if !ok {
			return mismatch(path, "a string", tok)
		}
		v.SetString(s)
		return nil
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return mismatch(path, "a whole number", tok)
		}
		i, err := strconv.ParseInt(string(n), 10, v.Type().Bits())
		if err != nil {
			return badRequest(path, fmt.Sprintf("must be a whole number that fits in %d bits, not %s", v.Type().Bits(), excerpt(string(n))))
		}
		v.SetInt(i)
		return nil
	default:
		// A request type with a field the decoder does not handle is a bug
		// here, not in the request: a 500.
		return fmt.Errorf("decode %s: unsupported kind %s", path, v.Kind())
	}
}

// end reads the ] or } that closes an array or object.
func (d *decoder) end() error {
	if _, err := d.dec.Token(); err != nil {
		return d.readError(err)
	}
	return nil
}

// readError turns a failure to read or parse the body into a problem.
func (d *decoder) readError(err error) error {
	var se *syntaxError
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return &problemError{Problem{Type: "about:blank", Title: "request body too large", Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body limit is %d bytes", mbe.Limit)}}
	case errors.As(err, &ne) && ne.Timeout():
		// The server's read timeout cut the body off: the client was too
		// slow, the JSON is not at fault.
		return &problemError{Problem{Type: "about:blank", Title: "request timeout", Status: http.StatusRequestTimeout,
			Detail: "the body did not arrive within the server's read timeout"}}
	case errors.As(err, &se):
		return badRequest("", fmt.Sprintf("malformed JSON at byte %d", se.offset))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", fmt.Sprintf("the body ends inside its JSON value, after %d bytes", d.dec.InputOffset()))
	}
	return badRequest("", "the body could not be read")
}

// jsonType names the JSON type a request field of type t takes.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "a whole number"
	default:
		// Kinds fill does not decode; it reports them as a bug.
		return "a value"
	}
}

func mismatch(path, want string, tok json.Token) error {
	got := "null"
	switch t := tok.(type) {
	case json.Delim:
		got = "an array"
		if t == '{' {
			got = "an object"
		}
	case string:
		got = "a string"
	case json.Number:
		got = "a number"
	case bool:
		got = "a boolean"
	}
	if path == "" {
		return badRequest("", fmt.Sprintf("the body must be %s, not %s", want, got))
	}
	return badRequest(path, fmt.Sprintf("must be %s, not %s", want, got))
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

var fieldCache sync.Map // reflect.Type -> map[string]jsonField

// jsonField is a struct field as a JSON member.
type jsonField struct {
	index     int
	omitEmpty bool // optional: left out rather than sent empty
}

// jsonFields maps a struct's JSON member names to its fields.
func jsonFields(t reflect.Type) map[string]jsonField {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]jsonField)
	}
	m := map[string]jsonField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = jsonField{index: i, omitEmpty: slices.Contains(strings.Split(opts, ","), "omitempty")}
	}
	fieldCache.Store(t, m)
	return m
}

// maxQuoted bounds how much of a client's value a problem quotes back.
const maxQuoted = 64

// excerpt quotes v, cut to its first maxQuoted bytes, escaped.
func excerpt(v string) string {
	if len(v) <= maxQuoted {
		return strconv.Quote(v)
	}
	return strconv.Quote(shorten(v)) + fmt.Sprintf(" (%d bytes, cut)", len(v))
}

// shorten cuts v to at most maxQuoted bytes, at a character boundary.
func shorten(v string) string {
	if len(v) <= maxQuoted {
		return v
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut]
}
