package tail

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"time"
)

// The Go form of every record (pkg/events) names its Avro fields in `avro`
// tags. Walking those, rather than a case per type, gives a new record type
// its JSON form and its SKUs without a change here.

var timeType = reflect.TypeFor[time.Time]()

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Fields is the JSON form of a decoded value: a record is an object of its
// Avro fields in schema order, a time is RFC 3339 in UTC, an absent
// optional field is null, bytes are base64.
func Fields(x any) any { return walk(reflect.ValueOf(x)) }

func walk(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Invalid:
		return nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return walk(v.Elem())
	case reflect.Struct:
		if v.Type() == timeType {
			return formatTime(v.Interface().(time.Time))
		}
		o := object{}
		for _, f := range reflect.VisibleFields(v.Type()) {
			if name := f.Tag.Get("avro"); name != "" && name != "-" {
				o = append(o, member{name, walk(v.FieldByIndex(f.Index))})
			}
		}
		return o
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return v.Bytes() // Avro bytes: base64 in JSON
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = walk(v.Index(i))
		}
		return out
	case reflect.Map:
		out := make(map[string]any, v.Len())
		for it := v.MapRange(); it.Next(); {
			out[it.Key().String()] = walk(it.Value())
		}
		return out
	default:
		// Scalars (strings, numbers, booleans) are their JSON selves.
		return v.Interface()
	}
}

// skus lists the SKUs a decoded value names: its own and its lines'.
func skus(x any) []string {
	var out []string
	var visit func(v reflect.Value)
	visit = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				visit(v.Elem())
			}
		case reflect.Struct:
			if v.Type() == timeType {
				return
			}
			for _, f := range reflect.VisibleFields(v.Type()) {
				fv := v.FieldByIndex(f.Index)
				if f.Tag.Get("avro") == "sku" && fv.Kind() == reflect.String {
					if s := fv.String(); !slices.Contains(out, s) {
						out = append(out, s)
					}
					continue
				}
				if f.Tag.Get("avro") != "" {
					visit(fv)
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				visit(v.Index(i))
			}
		default:
			// Scalars and maps name no SKU: a SKU is a string field
			// tagged sku, found above.
		}
	}
	visit(reflect.ValueOf(x))
	return out
}

// member is one member of an object.
type member struct {
	name  string
	value any
}

// object is a JSON object whose members keep their order, which
// encoding/json's maps would sort.
type object []member

// MarshalJSON implements json.Marshaler.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(m.name); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // the encoder's newline
		b.WriteByte(':')
		if err := enc.Encode(m.value); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
