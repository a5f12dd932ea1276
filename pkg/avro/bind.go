package avro

import (
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
)

// binder moves values between goavro's native form (maps, slices, unions as
// single-entry maps) and Go structs whose fields carry `avro:"name"` tags.
// It is driven by the canonical schema, so a writer's missing fields get the
// canonical default and its extra fields are never looked at.
type binder struct {
	mu     sync.RWMutex
	fields map[reflect.Type]map[string][]int
}

var timeType = reflect.TypeOf(time.Time{})

func (b *binder) fieldIndex(t reflect.Type) map[string][]int {
	b.mu.RLock()
	idx, ok := b.fields[t]
	b.mu.RUnlock()
	if ok {
		return idx
	}
	idx = map[string][]int{}
	// VisibleFields includes the fields of embedded structs, such as the
	// common metadata every source event embeds.
	for _, f := range reflect.VisibleFields(t) {
		if tag := f.Tag.Get("avro"); tag != "" && tag != "-" {
			idx[tag] = f.Index
		}
	}
	b.mu.Lock()
	if b.fields == nil {
		b.fields = map[reflect.Type]map[string][]int{}
	}
	b.fields[t] = idx
	b.mu.Unlock()
	return idx
}

// checkType reports a reader field that the Go type cannot hold, at start-up
// rather than on the first record.
func (b *binder) checkType(t reflect.Type, n *node) error {
	if n.kind != "record" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	idx := b.fieldIndex(t)
	for _, f := range n.fields {
		i, ok := idx[f.name]
		if !ok {
			return fmt.Errorf("%s: Go type %s has no field tagged %q", n.fullName, t, f.name)
		}
		ft := t.FieldByIndex(i).Type
		inner := f.typ
		if inner.kind == "union" {
			inner = nonNull(inner)
		}
		switch inner.kind {
		case "record":
			if err := b.checkType(ft, inner); err != nil {
				return err
			}
		case "array":
			if ft.Kind() == reflect.Slice && inner.items.kind == "record" {
				if err := b.checkType(ft.Elem(), inner.items); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func nonNull(u *node) *node {
	for _, br := range u.branches {
		if br.kind != "null" {
			return br
		}
	}
	return u.branches[0]
}

// fromNative stores x, in goavro's native form for schema n, into dst.
func (b *binder) fromNative(dst reflect.Value, n *node, x any) error {
	switch n.kind {
	case "union":
		return b.unionFromNative(dst, n, x)
	case "record":
		return b.recordFromNative(dst, n, x)
	case "array":
		return b.arrayFromNative(dst, n, x)
	case "map":
		return b.mapFromNative(dst, n, x)
	}
	return setScalar(dst, x)
}

// unionFromNative unwraps goavro's single-entry union map. A null leaves
// dst at its zero value; a pointer field gets a freshly allocated value.
func (b *binder) unionFromNative(dst reflect.Value, n *node, x any) error {
	if x == nil {
		dst.SetZero()
		return nil
	}
	m, ok := x.(map[string]any)
	if !ok || len(m) != 1 {
		return fmt.Errorf("union value %T", x)
	}
	var val any
	for _, v := range m {
		val = v
	}
	br := nonNull(n)
	if dst.Kind() == reflect.Pointer {
		p := reflect.New(dst.Type().Elem())
		if err := b.fromNative(p.Elem(), br, val); err != nil {
			return err
		}
		dst.Set(p)
		return nil
	}
	return b.fromNative(dst, br, val)
}

// recordFromNative fills the tagged fields of dst from the record's map,
// taking the canonical default for a field the writer did not send. Fields
// the Go type does not tag are skipped.
func (b *binder) recordFromNative(dst reflect.Value, n *node, x any) error {
	m, ok := x.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: record value %T", n.fullName, x)
	}
	idx := b.fieldIndex(dst.Type())
	for _, f := range n.fields {
		i, ok := idx[f.name]
		if !ok {
			continue
		}
		v, present := m[f.name]
		if !present {
			d, err := fieldDefault(n, f)
			if err != nil {
				return err
			}
			v = d
		}
		if err := b.fromNative(dst.FieldByIndex(i), f.typ, v); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// fieldDefault is the native value of field f of record n when a writer's
// data lacks it.
func fieldDefault(n *node, f field) (any, error) {
	if !f.hasDefault {
		return nil, fmt.Errorf("%w: field %s.%s is missing and has no default", ErrSchemaMismatch, n.fullName, f.name)
	}
	d, err := defaultNative(f.typ, f.def)
	if err != nil {
		return nil, fmt.Errorf("default of %s.%s: %w", n.fullName, f.name, err)
	}
	return d, nil
}

func (b *binder) arrayFromNative(dst reflect.Value, n *node, x any) error {
	arr, ok := x.([]any)
	if !ok {
		return fmt.Errorf("array value %T", x)
	}
	if len(arr) == 0 {
		dst.SetZero() // nil, the Go way to say empty
		return nil
	}
	s := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
	for i, e := range arr {
		if err := b.fromNative(s.Index(i), n.items, e); err != nil {
			return err
		}
	}
	dst.Set(s)
	return nil
}

func (b *binder) mapFromNative(dst reflect.Value, n *node, x any) error {
	m, ok := x.(map[string]any)
	if !ok {
		return fmt.Errorf("map value %T", x)
	}
	out := reflect.MakeMapWithSize(dst.Type(), len(m))
	for k, e := range m {
		ev := reflect.New(dst.Type().Elem()).Elem()
		if err := b.fromNative(ev, n.values, e); err != nil {
			return err
		}
		out.SetMapIndex(reflect.ValueOf(k), ev)
	}
	dst.Set(out)
	return nil
}

func setScalar(dst reflect.Value, x any) error {
	if dst.Type() == timeType {
		switch v := x.(type) {
		case time.Time:
			dst.Set(reflect.ValueOf(v.UTC()))
			return nil
		case int64: // a writer without the logical type
			dst.Set(reflect.ValueOf(time.UnixMilli(v).UTC()))
			return nil
		}
		return fmt.Errorf("time value %T", x)
	}
	switch dst.Kind() {
	case reflect.String:
		s, ok := x.(string)
		if !ok {
			return fmt.Errorf("string value %T", x)
		}
		dst.SetString(s)
	case reflect.Int, reflect.Int32, reflect.Int64:
		switch v := x.(type) {
		case int32:
			dst.SetInt(int64(v))
		case int64:
			dst.SetInt(v)
		case int:
			dst.SetInt(int64(v))
		case time.Time:
			dst.SetInt(v.UnixMilli())
		default:
			return fmt.Errorf("integer value %T", x)
		}
	case reflect.Float32, reflect.Float64:
		switch v := x.(type) {
		case float32:
			dst.SetFloat(float64(v))
		case float64:
			dst.SetFloat(v)
		case int32:
			dst.SetFloat(float64(v))
		case int64:
			dst.SetFloat(float64(v))
		default:
			return fmt.Errorf("float value %T", x)
		}
	case reflect.Bool:
		v, ok := x.(bool)
		if !ok {
			return fmt.Errorf("boolean value %T", x)
		}
		dst.SetBool(v)
	case reflect.Slice:
		v, ok := x.([]byte)
		if !ok || dst.Type().Elem().Kind() != reflect.Uint8 {
			return fmt.Errorf("bytes value %T", x)
		}
		dst.SetBytes(append([]byte(nil), v...))
	default:
		return fmt.Errorf("unsupported Go kind %s", dst.Kind())
	}
	return nil
}

func (b *binder) toNative(src reflect.Value, n *node) (any, error) {
	if n.kind == "union" {
		if src.Kind() == reflect.Pointer {
			if src.IsNil() {
				return nil, nil
			}
			src = src.Elem()
		}
		br := nonNull(n)
		v, err := b.toNative(src, br)
		if err != nil {
			return nil, err
		}
		return goavro.Union(br.branchName(), v), nil
	}
	switch n.kind {
	case "record":
		idx := b.fieldIndex(src.Type())
		m := make(map[string]any, len(n.fields))
		for _, f := range n.fields {
			i, ok := idx[f.name]
			if !ok {
				return nil, fmt.Errorf("%s: Go type %s has no field %q", n.fullName, src.Type(), f.name)
			}
			v, err := b.toNative(src.FieldByIndex(i), f.typ)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			m[f.name] = v
		}
		return m, nil
	case "array":
		out := make([]any, src.Len())
		for i := range out {
			v, err := b.toNative(src.Index(i), n.items)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case "map":
		out := make(map[string]any, src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v, err := b.toNative(iter.Value(), n.values)
			if err != nil {
				return nil, err
			}
			out[iter.Key().String()] = v
		}
		return out, nil
	case "enum", "string":
		return src.String(), nil
	case "int":
		if src.Type() == timeType {
			return src.Interface(), nil
		}
		return int32(src.Int()), nil
	case "long":
		if src.Type() == timeType {
			return src.Interface(), nil
		}
		return src.Int(), nil
	case "float":
		return float32(src.Float()), nil
	case "double":
		return src.Float(), nil
	case "boolean":
		return src.Bool(), nil
	case "bytes":
		return src.Bytes(), nil
	case "null":
		return nil, nil
	}
	return nil, fmt.Errorf("unsupported schema kind %s", n.kind)
}
