package contract

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"

	yaml "go.yaml.in/yaml/v3"
)

// The JSON types a schema's type keyword names.
const (
	TypeObject  = "object"
	TypeArray   = "array"
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeNull    = "null"
)

var jsonTypes = []string{TypeObject, TypeArray, TypeString, TypeInteger, TypeNumber, TypeBoolean, TypeNull}

// Schema is a payload's JSON Schema, in the subset package contract reads
// (see the package documentation). Fields left out of the schema are zero;
// pointers tell a bound that is absent from a bound of 0.
type Schema struct {
	// Type lists the JSON types allowed, in the order written; empty
	// allows any value.
	Type        []string
	Title       string
	Description string
	Deprecated  bool

	// Properties by name, PropertyOrder their names in the order written,
	// Required the required ones in the order written.
	Properties    map[string]*Schema
	PropertyOrder []string
	Required      []string
	// AdditionalProperties is the schema of properties not listed; nil
	// with Closed false allows any, Closed (additionalProperties: false)
	// allows none.
	AdditionalProperties *Schema
	Closed               bool

	// Items is the schema of an array's items; nil allows any.
	Items              *Schema
	MinItems, MaxItems *int

	// Enum lists the values allowed; nil allows any. Const, when HasConst,
	// is the one value allowed. Default, when HasDefault, is the value a
	// consumer assumes when the property is absent. Values are as JSON
	// decodes them, with integers as int64.
	Enum       []any
	Const      any
	HasConst   bool
	Default    any
	HasDefault bool

	Minimum, Maximum                   *float64
	ExclusiveMinimum, ExclusiveMaximum *float64
	MinLength, MaxLength               *int
	Pattern                            string
	Format                             string

	Pos Pos

	raw map[string]any
}

// JSON returns the schema as a JSON Schema document's value: maps, lists,
// strings, numbers and booleans, for encoding/json. The map is shared:
// do not change it.
func (s *Schema) JSON() map[string]any { return s.raw }

// Allows reports whether the schema's type allows the JSON type t (an
// integer is a number too).
func (s *Schema) Allows(t string) bool {
	if len(s.Type) == 0 {
		return true
	}
	return slices.Contains(s.Type, t) || (t == TypeInteger && slices.Contains(s.Type, TypeNumber))
}

// IsRequired reports whether property name is required.
func (s *Schema) IsRequired(name string) bool { return slices.Contains(s.Required, name) }

// schema reads a schema at depth (the payload's is 1).
func (d *decoder) schema(n *yaml.Node, where string, depth int) *Schema {
	s := &Schema{Pos: d.pos(n), raw: map[string]any{}}
	if !d.p.spend(d.file, n) {
		return s
	}
	if depth > maxDepth {
		d.p.add(d.pos(n), "", "the schema of %s nests more than %d levels", where, maxDepth)
		return s
	}
	if n.Kind != yaml.MappingNode {
		d.p.add(d.pos(n), "a schema is a mapping such as {type: string}", "the schema of %s must be a mapping, not %s", where, describe(n))
		return s
	}
	var requiredAt *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		key := k.Value
		if seen[key] {
			d.p.add(d.pos(k), "remove one of them", "duplicate key %q in the schema of %s", key, where)
			continue
		}
		seen[key] = true
		if len(key) > 2 && key[:2] == "x-" {
			s.raw[key] = d.value(v, depth+1)
			continue
		}
		switch key {
		case "type":
			s.Type = d.schemaTypes(v, where)
			if len(s.Type) == 1 {
				s.raw[key] = s.Type[0]
			} else {
				s.raw[key] = toAny(s.Type)
			}
		case "title", "description", "format", "$comment":
			str, ok := d.str(key+" in the schema of "+where, v)
			if !ok {
				continue
			}
			switch key {
			case "title":
				s.Title = str
			case "description":
				s.Description = str
			case "format":
				s.Format = str
			}
			s.raw[key] = str
		case "pattern":
			str, ok := d.str("pattern", v)
			if !ok {
				continue
			}
			if _, err := regexp.Compile(str); err != nil {
				d.p.add(d.pos(v), "write a regular expression Go's regexp package accepts", "pattern in the schema of %s: %v", where, err)
				continue
			}
			s.Pattern = str
			s.raw[key] = str
		case "deprecated":
			s.Deprecated = d.boolean("deprecated", v)
			s.raw[key] = s.Deprecated
		case "properties":
			s.Properties = map[string]*Schema{}
			props := map[string]any{}
			if v.Kind != yaml.MappingNode {
				if !isNull(v) {
					d.p.add(d.pos(v), "map each property's name to its schema", "properties in the schema of %s must be a mapping, not %s", where, describe(v))
				}
				s.raw[key] = props
				continue
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				pk, pv := v.Content[j], resolve(v.Content[j+1])
				if _, dup := s.Properties[pk.Value]; dup {
					d.p.add(d.pos(pk), "remove one of them", "property %q is declared twice in the schema of %s", pk.Value, where)
					continue
				}
				ps := d.schema(pv, where+"."+pk.Value, depth+1)
				s.Properties[pk.Value] = ps
				s.PropertyOrder = append(s.PropertyOrder, pk.Value)
				props[pk.Value] = ps.raw
			}
			s.raw[key] = props
		case "required":
			requiredAt = v
			if v.Kind != yaml.SequenceNode {
				d.p.add(d.pos(v), "list the required properties: required: [trip_id]", "required in the schema of %s must be a list, not %s", where, describe(v))
				continue
			}
			for _, item := range v.Content {
				name, ok := d.str("a required property", resolve(item))
				if !ok {
					continue
				}
				if slices.Contains(s.Required, name) {
					d.p.add(d.pos(item), "", "property %q is listed twice in required", name)
					continue
				}
				s.Required = append(s.Required, name)
			}
			s.raw[key] = toAny(s.Required)
		case "additionalProperties":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
				allowed := d.boolean(key, v)
				s.Closed = !allowed
				s.raw[key] = allowed
				continue
			}
			s.AdditionalProperties = d.schema(v, where+".*", depth+1)
			s.raw[key] = s.AdditionalProperties.raw
		case "items":
			s.Items = d.schema(v, where+"[]", depth+1)
			s.raw[key] = s.Items.raw
		case "enum":
			if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
				d.p.add(d.pos(v), "list the values allowed: enum: [economy, comfort]", "enum in the schema of %s must be a non-empty list, not %s", where, describe(v))
				continue
			}
			for _, item := range v.Content {
				s.Enum = append(s.Enum, d.value(resolve(item), depth+1))
			}
			s.raw[key] = s.Enum
		case "const":
			s.Const, s.HasConst = d.value(v, depth+1), true
			s.raw[key] = s.Const
		case "default":
			s.Default, s.HasDefault = d.value(v, depth+1), true
			s.raw[key] = s.Default
		case "examples":
			if v.Kind != yaml.SequenceNode {
				d.p.add(d.pos(v), "list example values: examples: [...]", "examples in the schema of %s must be a list, not %s", where, describe(v))
				continue
			}
			s.raw[key] = d.value(v, depth+1)
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			f, ok := d.number(key+" in the schema of "+where, v)
			if !ok {
				continue
			}
			*map[string]**float64{"minimum": &s.Minimum, "maximum": &s.Maximum,
				"exclusiveMinimum": &s.ExclusiveMinimum, "exclusiveMaximum": &s.ExclusiveMaximum}[key] = &f
			s.raw[key] = d.value(v, depth+1)
		case "minLength", "maxLength", "minItems", "maxItems":
			c, ok := d.count(key+" in the schema of "+where, v)
			if !ok {
				continue
			}
			*map[string]**int{"minLength": &s.MinLength, "maxLength": &s.MaxLength,
				"minItems": &s.MinItems, "maxItems": &s.MaxItems}[key] = &c
			s.raw[key] = int64(c)
		case "$ref", "$defs", "definitions", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
			"patternProperties", "prefixItems", "contains", "dependentRequired", "dependentSchemas",
			"propertyNames", "unevaluatedProperties", "unevaluatedItems", "minProperties", "maxProperties",
			"uniqueItems", "multipleOf", "minContains", "maxContains", "$id", "$schema", "$anchor", "$dynamicRef":
			d.p.add(d.pos(k), "contracts use the keywords listed in docs/contracts.md#schemas, which map onto Go types and have compatibility rules; write the shape out, or use a new version for a new shape",
				"the schema keyword %q (in %s) is not supported in contracts", key, where)
		default:
			d.p.add(d.pos(k), "see docs/contracts.md#schemas for the keywords contracts read; keys starting with x- are kept and ignored",
				"unknown schema keyword %q in %s", key, where)
		}
	}
	d.checkSchema(s, where, requiredAt)
	return s
}

// checkSchema relates a schema's keywords to each other.
func (d *decoder) checkSchema(s *Schema, where string, requiredAt *yaml.Node) {
	if requiredAt != nil && s.Properties != nil {
		for _, name := range s.Required {
			if _, ok := s.Properties[name]; !ok {
				d.p.add(d.pos(requiredAt), "declare it under properties, or remove it from required", "required property %q of %s is not among its properties", name, where)
			}
		}
	}
	if s.Properties != nil && len(s.Type) > 0 && !slices.Contains(s.Type, TypeObject) {
		d.p.add(s.Pos, "properties apply to objects: write type: object", "the schema of %s has properties but its type is %v", where, s.Type)
	}
	if s.Items != nil && len(s.Type) > 0 && !slices.Contains(s.Type, TypeArray) {
		d.p.add(s.Pos, "items apply to arrays: write type: array", "the schema of %s has items but its type is %v", where, s.Type)
	}
	if s.Minimum != nil && s.Maximum != nil && *s.Minimum > *s.Maximum {
		d.p.add(s.Pos, "", "the schema of %s has minimum %v above maximum %v: no value fits", where, *s.Minimum, *s.Maximum)
	}
	if s.MinLength != nil && s.MaxLength != nil && *s.MinLength > *s.MaxLength {
		d.p.add(s.Pos, "", "the schema of %s has minLength %d above maxLength %d: no value fits", where, *s.MinLength, *s.MaxLength)
	}
	if s.MinItems != nil && s.MaxItems != nil && *s.MinItems > *s.MaxItems {
		d.p.add(s.Pos, "", "the schema of %s has minItems %d above maxItems %d: no value fits", where, *s.MinItems, *s.MaxItems)
	}
}

func (d *decoder) schemaTypes(v *yaml.Node, where string) []string {
	var names []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		names = []*yaml.Node{v}
	case yaml.SequenceNode:
		for _, item := range v.Content {
			names = append(names, resolve(item))
		}
	}
	if len(names) == 0 {
		d.p.add(d.pos(v), "write one of "+fmt.Sprint(jsonTypes)+", or a list of them", "type in the schema of %s must be a type name or a list of them, not %s", where, describe(v))
		return nil
	}
	var out []string
	for _, n := range names {
		if n.Kind != yaml.ScalarNode || !slices.Contains(jsonTypes, n.Value) {
			d.p.add(d.pos(n), "write one of "+fmt.Sprint(jsonTypes), "unknown type %s in the schema of %s", describe(n), where)
			continue
		}
		if slices.Contains(out, n.Value) {
			d.p.add(d.pos(n), "", "type %q is listed twice in the schema of %s", n.Value, where)
			continue
		}
		out = append(out, n.Value)
	}
	return out
}

// value converts a YAML value into the value JSON decoding gives, with
// integers as int64.
func (d *decoder) value(n *yaml.Node, depth int) any {
	n = resolve(n)
	if !d.p.spend(d.file, n) {
		return nil
	}
	if depth > maxDepth {
		d.p.add(d.pos(n), "", "a value nests more than %d levels", maxDepth)
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = d.value(n.Content[i+1], depth+1)
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			l = append(l, d.value(item, depth+1))
		}
		return l
	}
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool":
		b, _ := strconv.ParseBool(n.Value)
		return b
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i
		}
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
		d.p.add(d.pos(n), "", "%s is not a number JSON can hold", n.Value)
		return nil
	case "!!str":
		return n.Value
	}
	d.p.add(d.pos(n), "write it as a string, a number, true, false or null", "the value %s (YAML tag %s) has no JSON equivalent", strconv.Quote(n.Value), n.Tag)
	return nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func sortStrings(ss []string) { sort.Strings(ss) }
