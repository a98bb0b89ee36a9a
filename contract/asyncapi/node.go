package asyncapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// The document is built as a tree of yaml.Node, whose mappings keep the
// order their keys were added in, so that the YAML and the JSON written
// from it are the same, byte for byte, for the same input.

// mapping is a YAML mapping under construction.
type mapping struct{ n *yaml.Node }

func newMapping() mapping { return mapping{&yaml.Node{Kind: yaml.MappingNode}} }

// set appends key with value v: a *yaml.Node, a mapping, or a Go value
// that value converts.
func (m mapping) set(key string, v any) mapping {
	m.n.Content = append(m.n.Content, str(key), value(v))
	return m
}

// setIf sets key when ok.
func (m mapping) setIf(ok bool, key string, v any) mapping {
	if ok {
		m.set(key, v)
	}
	return m
}

// empty reports whether the mapping has no key.
func (m mapping) empty() bool { return len(m.n.Content) == 0 }

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// ref is a Reference Object.
func ref(pointer string) mapping { return newMapping().set("$ref", pointer) }

// value converts v into a node: maps with their keys sorted, as JSON
// Schema values decode (package contract's Schema.JSON).
func value(v any) *yaml.Node {
	switch v := v.(type) {
	case *yaml.Node:
		return v
	case mapping:
		return v.n
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case string:
		return str(v)
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v, 10)}
	case uint64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatUint(v, 10)}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(v), 10)}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(v, 'g', -1, 64)}
	case []string:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			s.Content = append(s.Content, str(e))
		}
		return s
	case []any:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			s.Content = append(s.Content, value(e))
		}
		return s
	case []mapping:
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, e := range v {
			s.Content = append(s.Content, e.n)
		}
		return s
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		m := newMapping()
		for _, k := range keys {
			m.set(k, v[k])
		}
		return m.n
	default:
		// Schema values are only the types above; anything else is a
		// bug, shown rather than hidden.
		return str(fmt.Sprint(v))
	}
}

// encodeYAML writes the document as YAML, indented by two spaces.
func encodeYAML(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("asyncapi: writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("asyncapi: writing YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeJSON writes the document as JSON, keys in the tree's order,
// indented by two spaces.
func encodeJSON(doc *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, doc); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, fmt.Errorf("asyncapi: writing JSON: %w", err)
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return fmt.Errorf("asyncapi: writing JSON: a document of %d nodes", len(n.Content))
		}
		return writeJSON(buf, n.Content[0])
	case yaml.MappingNode:
		buf.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				buf.WriteByte(',')
			}
			jsonString(buf, n.Content[i].Value)
			buf.WriteByte(':')
			if err := writeJSON(buf, n.Content[i+1]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case yaml.SequenceNode:
		buf.WriteByte('[')
		for i, e := range n.Content {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeJSON(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!int", "!!float", "!!bool", "!!null":
			buf.WriteString(n.Value)
		default:
			jsonString(buf, n.Value)
		}
	default:
		return fmt.Errorf("asyncapi: writing JSON: unexpected node kind %v", n.Kind)
	}
	return nil
}

// jsonString writes s as a JSON string, leaving <, > and & as they are.
func jsonString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // a string always encodes
	buf.Truncate(buf.Len() - 1) // the newline Encode ends with
}
