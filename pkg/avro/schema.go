package avro

import (
	"encoding/json"
	"fmt"
	"strings"
)

// node is a parsed Avro schema, enough of it to resolve a writer's data into
// the canonical (reader) shape and to build goavro's native form for encoding.
type node struct {
	kind     string // record, enum, array, map, union, or a primitive name
	logical  string // logicalType, e.g. timestamp-millis, date
	fullName string // for named types
	fields   []field
	items    *node   // array
	values   *node   // map
	branches []*node // union
}

type field struct {
	name       string
	typ        *node
	def        any // JSON-decoded default
	hasDefault bool
}

func parseSchema(text string) (*node, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	named := map[string]*node{}
	return parseNode(raw, "", named)
}

func parseNode(raw any, ns string, named map[string]*node) (*node, error) {
	switch v := raw.(type) {
	case string:
		return parseName(v, ns, named)
	case []any:
		return parseUnion(v, ns, named)
	case map[string]any:
		return parseObject(v, ns, named)
	}
	return nil, fmt.Errorf("unsupported schema element %T", raw)
}

// parseName resolves a primitive type name, or a named type declared
// earlier in the schema, first relative to the enclosing namespace.
func parseName(v, ns string, named map[string]*node) (*node, error) {
	switch v {
	case "null", "boolean", "int", "long", "float", "double", "bytes", "string":
		return &node{kind: v}, nil
	}
	full := v
	if !strings.Contains(v, ".") && ns != "" {
		full = ns + "." + v
	}
	if n, ok := named[full]; ok {
		return n, nil
	}
	if n, ok := named[v]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("unknown type %q", v)
}

func parseUnion(v []any, ns string, named map[string]*node) (*node, error) {
	n := &node{kind: "union"}
	for _, b := range v {
		bn, err := parseNode(b, ns, named)
		if err != nil {
			return nil, err
		}
		n.branches = append(n.branches, bn)
	}
	return n, nil
}

// parseObject parses a schema written as a JSON object: a named type, an
// array, a map, or a primitive carrying a logical type.
func parseObject(v map[string]any, ns string, named map[string]*node) (*node, error) {
	typ, _ := v["type"].(string)
	logical, _ := v["logicalType"].(string)
	switch typ {
	case "record", "error", "enum", "fixed":
		return parseNamed(v, typ, ns, named)
	case "array":
		items, err := parseNode(v["items"], ns, named)
		if err != nil {
			return nil, err
		}
		return &node{kind: "array", items: items}, nil
	case "map":
		values, err := parseNode(v["values"], ns, named)
		if err != nil {
			return nil, err
		}
		return &node{kind: "map", values: values}, nil
	default:
		n, err := parseNode(typ, ns, named)
		if err != nil {
			return nil, err
		}
		if logical == "" {
			return n, nil
		}
		cp := *n
		cp.logical = logical
		return &cp, nil
	}
}

// parseNamed parses a record, error, enum or fixed type and registers it
// under its full name before its fields are read, so that a field may
// refer to the record itself.
func parseNamed(v map[string]any, typ, ns string, named map[string]*node) (*node, error) {
	name, _ := v["name"].(string)
	space, _ := v["namespace"].(string)
	if space == "" {
		space = ns
	}
	full := name
	if i := strings.LastIndex(name, "."); i >= 0 {
		space = name[:i]
	} else if space != "" {
		full = space + "." + name
	}
	n := &node{kind: typ, fullName: full}
	if typ == "error" {
		n.kind = "record"
	}
	named[full] = n
	if n.kind != "record" {
		return n, nil
	}
	fs, _ := v["fields"].([]any)
	for _, fr := range fs {
		f, err := parseField(fr, full, space, named)
		if err != nil {
			return nil, err
		}
		n.fields = append(n.fields, f)
	}
	return n, nil
}

// parseField parses one field of record full, whose type names resolve
// against the record's namespace space.
func parseField(fr any, full, space string, named map[string]*node) (field, error) {
	fm, ok := fr.(map[string]any)
	if !ok {
		return field{}, fmt.Errorf("record %s: field is not an object", full)
	}
	fname, _ := fm["name"].(string)
	ft, err := parseNode(fm["type"], space, named)
	if err != nil {
		return field{}, fmt.Errorf("record %s field %s: %w", full, fname, err)
	}
	d, has := fm["default"]
	return field{name: fname, typ: ft, def: d, hasDefault: has}, nil
}

// branchName is the name goavro expects for a union branch.
func (n *node) branchName() string {
	if n.fullName != "" {
		return n.fullName
	}
	if n.logical != "" {
		return n.kind + "." + n.logical
	}
	return n.kind
}

// defaultNative turns a field's JSON default into goavro's native form.
func defaultNative(n *node, def any) (any, error) {
	switch n.kind {
	case "union":
		return defaultUnion(n, def)
	case "null":
		return nil, nil
	case "int", "long":
		num, ok := def.(json.Number)
		if !ok {
			return nil, fmt.Errorf("default %v is not a number", def)
		}
		i, err := num.Int64()
		if err != nil {
			return nil, err
		}
		return i, nil
	case "float", "double":
		num, ok := def.(json.Number)
		if !ok {
			return nil, fmt.Errorf("default %v is not a number", def)
		}
		return num.Float64()
	case "boolean", "string", "enum", "bytes":
		return def, nil
	case "array":
		return defaultArray(n, def)
	case "map":
		return defaultMap(n, def)
	case "record":
		return defaultRecord(n, def)
	}
	return nil, fmt.Errorf("no default for %s", n.kind)
}

// defaultUnion wraps the default in its union branch, which by the Avro
// specification is always the first one.
func defaultUnion(n *node, def any) (any, error) {
	if len(n.branches) == 0 {
		return nil, fmt.Errorf("empty union")
	}
	if n.branches[0].kind == "null" {
		return nil, nil
	}
	v, err := defaultNative(n.branches[0], def)
	if err != nil {
		return nil, err
	}
	return map[string]any{n.branches[0].branchName(): v}, nil
}

func defaultArray(n *node, def any) (any, error) {
	arr, ok := def.([]any)
	if !ok {
		return nil, fmt.Errorf("default %v is not an array", def)
	}
	out := make([]any, len(arr))
	for i, e := range arr {
		v, err := defaultNative(n.items, e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func defaultMap(n *node, def any) (any, error) {
	m, ok := def.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("default %v is not an object", def)
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		v, err := defaultNative(n.values, e)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// defaultRecord builds a record default; a field the default object leaves
// out takes the field's own default.
func defaultRecord(n *node, def any) (any, error) {
	m, ok := def.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("default %v is not an object", def)
	}
	out := make(map[string]any, len(n.fields))
	for _, f := range n.fields {
		e, present := m[f.name]
		if !present {
			e = f.def
		}
		v, err := defaultNative(f.typ, e)
		if err != nil {
			return nil, err
		}
		out[f.name] = v
	}
	return out, nil
}
