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
	case []any:
		n := &node{kind: "union"}
		for _, b := range v {
			bn, err := parseNode(b, ns, named)
			if err != nil {
				return nil, err
			}
			n.branches = append(n.branches, bn)
		}
		return n, nil
	case map[string]any:
		typ, _ := v["type"].(string)
		logical, _ := v["logicalType"].(string)
		switch typ {
		case "record", "error", "enum", "fixed":
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
				fm, ok := fr.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("record %s: field is not an object", full)
				}
				fname, _ := fm["name"].(string)
				ft, err := parseNode(fm["type"], space, named)
				if err != nil {
					return nil, fmt.Errorf("record %s field %s: %w", full, fname, err)
				}
				d, has := fm["default"]
				n.fields = append(n.fields, field{name: fname, typ: ft, def: d, hasDefault: has})
			}
			return n, nil
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
	return nil, fmt.Errorf("unsupported schema element %T", raw)
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
		// A union's default is for its first branch.
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
	case "map":
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
	case "record":
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
	return nil, fmt.Errorf("no default for %s", n.kind)
}
