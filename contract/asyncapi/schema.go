package asyncapi

import (
	"sort"

	"github.com/warrenmq/warren/contract"
)

// keywordOrder is the order a schema's keywords are written in; keywords
// not listed follow, sorted.
var keywordOrder = []string{
	"title", "description", "deprecated", "type", "format", "enum", "const", "default",
	"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum",
	"minLength", "maxLength", "pattern", "minItems", "maxItems",
	"required", "properties", "additionalProperties", "items",
	"examples", "$comment",
}

// schemaNode writes a contract schema with its properties in file order.
//
// Package contract reads a subset of JSON Schema draft 2020-12 whose every
// keyword means the same in draft 7 (exclusiveMinimum and exclusiveMaximum
// are numbers in both; items is a single schema), plus deprecated, which
// the AsyncAPI Schema Object (a superset of draft 7) has too. So the schema
// is written as it is, as an AsyncAPI Schema Object.
func schemaNode(s *contract.Schema) mapping {
	raw := s.JSON()
	m := newMapping()
	done := map[string]bool{}
	emit := func(key string) {
		v, ok := raw[key]
		if !ok || done[key] {
			return
		}
		done[key] = true
		switch key {
		case "properties":
			props := newMapping()
			for _, name := range s.PropertyOrder {
				props.set(name, schemaNode(s.Properties[name]))
			}
			m.set(key, props)
		case "items":
			if s.Items != nil {
				m.set(key, schemaNode(s.Items))
				return
			}
			m.set(key, v)
		case "additionalProperties":
			if s.AdditionalProperties != nil {
				m.set(key, schemaNode(s.AdditionalProperties))
				return
			}
			m.set(key, v)
		default:
			m.set(key, v)
		}
	}
	for _, k := range keywordOrder {
		emit(k)
	}
	rest := make([]string, 0, len(raw))
	for k := range raw {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		emit(k)
	}
	return m
}
