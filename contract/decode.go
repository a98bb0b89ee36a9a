package contract

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// problems collects the problems found while reading contracts.
type problems struct {
	list Problems
	// nodes counts the schema and value nodes read, aliases followed, so
	// that a file of aliases to aliases cannot take unbounded time.
	nodes int
}

// spend counts one node read at n, reporting whether the budget allows it.
func (p *problems) spend(file string, n *yaml.Node) bool {
	p.nodes++
	if p.nodes == MaxNodes+1 {
		p.add(pos(file, n), "split the contracts into several sets, or write aliases out",
			"the contracts hold more than %d schema nodes, aliases expanded (contract.MaxNodes)", MaxNodes)
	}
	return p.nodes <= MaxNodes
}

func (p *problems) add(at Pos, hint, format string, args ...any) {
	p.list = append(p.list, Problem{Pos: at, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (p *problems) warn(at Pos, hint, format string, args ...any) {
	p.list = append(p.list, Problem{Pos: at, Message: fmt.Sprintf(format, args...), Hint: hint, Warning: true})
}

func (p *problems) failed() bool { return len(p.list.Errors()) > 0 }

// result returns the problems as an error when one is an error.
func (p *problems) result() error {
	if p.failed() {
		return p.list
	}
	return nil
}

func pos(file string, n *yaml.Node) Pos {
	return Pos{File: file, Line: n.Line, Column: n.Column}
}

// MaxNodes is the most schema nodes (keywords' values, properties, items)
// a set of contracts may hold, aliases expanded: some 10,000 job types of
// 10 properties each.
const MaxNodes = 500_000

// maxDepth bounds how deep a contracts file nests, aliases followed.
const maxDepth = 64

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data's one YAML document; nil when it is empty or
// cannot be read, with a problem for the latter.
func (p *problems) document(file string, data []byte) *yaml.Node {
	var doc yaml.Node
	if err := decodeYAML(yaml.NewDecoder(bytes.NewReader(data)), &doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(Pos{File: file, Line: 1, Column: 1}, "declare job types under types", "the file is empty")
			return nil
		}
		line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		p.add(Pos{File: file, Line: line, Column: 1}, "", "YAML: %s", msg)
		return nil
	}
	if len(doc.Content) == 0 {
		p.add(Pos{File: file, Line: 1, Column: 1}, "declare job types under types", "the file is empty")
		return nil
	}
	return resolve(doc.Content[0])
}

// decodeYAML decodes one document, turning a panic in the YAML library
// into an error.
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: %v", v)
		}
	}()
	return dec.Decode(n)
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

type fileKindT int

const (
	kindUnknown fileKindT = iota
	kindTopology
	kindContracts
)

var topologyKeys = map[string]bool{
	"exchanges": true, "queues": true, "bindings": true, "routes": true,
	"schedules": true, "defaults": true, "delay": true, "contracts": true,
}

// fileKind tells a topology file from a contracts file by its top-level keys.
func fileKind(root *yaml.Node) fileKindT {
	if root.Kind != yaml.MappingNode {
		return kindUnknown
	}
	kind := kindUnknown
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i].Value
		switch {
		case topologyKeys[k]:
			return kindTopology
		case k == "types":
			kind = kindContracts
		}
	}
	return kind
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}

// decoder reads contracts from one file into set.
type decoder struct {
	p    *problems
	file string
	set  *Set
	// including lists the files being read, to refuse an include cycle.
	including []string
}

func (d *decoder) pos(n *yaml.Node) Pos { return pos(d.file, n) }

// fields maps a mapping's known keys to what reads their values.
type fields map[string]func(k, v *yaml.Node)

// object reads a mapping with fixed keys; "x-" keys are ignored. It
// reports whether n was a mapping (or empty).
func (d *decoder) object(n *yaml.Node, what string, fs fields) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.p.add(d.pos(n), "", "%s must be a mapping, not %s", what, describe(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			d.p.add(d.pos(k), "remove one of them", "duplicate key %q in %s", k.Value, what)
			continue
		}
		seen[k.Value] = true
		f, ok := fs[k.Value]
		if !ok {
			if strings.HasPrefix(k.Value, "x-") {
				continue
			}
			d.p.add(d.pos(k), "the keys here are "+knownKeys(fs), "unknown key %q in %s", k.Value, what)
			continue
		}
		f(k, resolve(v))
	}
	return true
}

func knownKeys(fs fields) string {
	keys := make([]string, 0, len(fs))
	for k := range fs {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return strings.Join(keys, ", ")
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names what a node is, for "must be X, not Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "empty"
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return n.Value
	}
	return strconv.Quote(n.Value)
}

func (d *decoder) str(what string, v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
		d.p.add(d.pos(v), "", "%s must be a string, not %s", what, describe(v))
		return "", false
	}
	return v.Value, true
}

func (d *decoder) boolean(what string, v *yaml.Node) bool {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		d.p.add(d.pos(v), "write true or false", "%s must be true or false, not %s", what, describe(v))
		return false
	}
	b, _ := strconv.ParseBool(v.Value)
	return b
}

// contractsKey reads the topology file's contracts key.
func (d *decoder) contractsKey(n *yaml.Node) {
	d.object(n, "contracts", fields{
		"include": func(_, v *yaml.Node) { d.include(v) },
		"types":   func(_, v *yaml.Node) { d.types(v) },
	})
}

// contractsFile reads a contracts file.
func (d *decoder) contractsFile(root *yaml.Node) {
	d.object(root, "the contracts file", fields{
		"version": func(_, v *yaml.Node) {
			if v.Kind != yaml.ScalarNode || v.Value != "1" {
				d.p.add(d.pos(v), "this warren reads version 1; upgrade warren or write version: 1", "unknown contracts file version %s", describe(v))
			}
		},
		"types": func(_, v *yaml.Node) { d.types(v) },
	})
}

// include reads the files a topology file includes.
func (d *decoder) include(v *yaml.Node) {
	if v.Kind != yaml.SequenceNode {
		d.p.add(d.pos(v), "write a list of paths, relative to this file: include: [contracts/*.yaml]", "include must be a list, not %s", describe(v))
		return
	}
	for _, item := range v.Content {
		item = resolve(item)
		pattern, ok := d.str("an include", item)
		if !ok {
			continue
		}
		files, err := includeFiles(d.file, pattern)
		if err != nil {
			d.p.add(d.pos(item), "see path/filepath.Match for the pattern syntax", "include %q: %v", pattern, err)
			continue
		}
		if len(files) == 0 {
			d.p.add(d.pos(item), "paths are relative to the file that includes them", "include %q matches no file", pattern)
			continue
		}
		for _, f := range files {
			d.includeFile(item, f)
		}
	}
}

func (d *decoder) includeFile(at *yaml.Node, file string) {
	for _, f := range append(d.including, d.file) {
		if f == file {
			d.p.add(d.pos(at), "a contracts file includes nothing", "include %q: the file includes itself", file)
			return
		}
	}
	data, err := readFile(file)
	if err != nil {
		d.p.add(d.pos(at), "", "include: %v", err)
		return
	}
	d.set.Files = append(d.set.Files, file)
	root := d.p.document(file, data)
	if root == nil {
		return
	}
	if fileKind(root) != kindContracts {
		d.p.add(pos(file, root), "an included file holds contracts only: a top-level types key (and version: 1)", "not a contracts file")
		return
	}
	sub := &decoder{p: d.p, file: file, set: d.set, including: append(d.including, d.file)}
	sub.contractsFile(root)
}

// jobTypeName checks a job type's name as the broker does.
func jobTypeName(name string) string {
	switch {
	case name == "":
		return "a job type is empty"
	case len(name) > 255:
		return fmt.Sprintf("job type is %d bytes; AMQP allows at most 255", len(name))
	}
	return ""
}

// types reads a types mapping.
func (d *decoder) types(v *yaml.Node) {
	if isNull(v) {
		return
	}
	if v.Kind != yaml.MappingNode {
		d.p.add(d.pos(v), "map each job type to its contract", "types must be a mapping, not %s", describe(v))
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		name := k.Value
		if msg := jobTypeName(name); msg != "" {
			d.p.add(d.pos(k), "", "%s", msg)
			continue
		}
		if prev, dup := d.set.Types[name]; dup {
			d.p.add(d.pos(k), "declare each job type once, in one file", "job type %q is declared twice; the first is at %s", name, prev.Pos)
			continue
		}
		t := &Type{Name: name, Versions: map[int]*Version{}, Pos: d.pos(k)}
		d.set.Types[name] = t
		hasVersions := false
		d.object(val, "job type "+strconv.Quote(name), fields{
			"description": func(_, v *yaml.Node) { t.Description, _ = d.str("description", v) },
			"versions": func(_, v *yaml.Node) {
				hasVersions = true
				d.versions(t, v)
			},
		})
		if !hasVersions {
			d.p.add(d.pos(k), "add versions: {1: {schema: {type: object, properties: {...}}}}", "job type %q has no versions", name)
		}
	}
}

func (d *decoder) versions(t *Type, v *yaml.Node) {
	if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
		d.p.add(d.pos(v), "map each version number, from 1, to its schema: versions: {1: {schema: ...}}", "versions of %q must be a non-empty mapping, not %s", t.Name, describe(v))
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		n, err := strconv.Atoi(k.Value)
		if err != nil || n < 1 || n > MaxVersion || k.Tag != "!!int" {
			d.p.add(d.pos(k), fmt.Sprintf("versions are numbered from 1 to %d", MaxVersion), "version %s of %q is not a version number", describe(k), t.Name)
			continue
		}
		if _, dup := t.Versions[n]; dup {
			d.p.add(d.pos(k), "remove one of them", "version %d of %q is declared twice", n, t.Name)
			continue
		}
		ver := &Version{Type: t.Name, Number: n, Pos: d.pos(k)}
		t.Versions[n] = ver
		hasSchema := false
		d.object(val, fmt.Sprintf("version %d of %q", n, t.Name), fields{
			"description": func(_, v *yaml.Node) { ver.Description, _ = d.str("description", v) },
			"deprecated":  func(_, v *yaml.Node) { ver.Deprecated = d.boolean("deprecated", v) },
			"schema": func(_, v *yaml.Node) {
				hasSchema = true
				ver.Schema = d.schema(v, fmt.Sprintf("%s v%d", t.Name, n), 1)
				if !slices.Equal(ver.Schema.Type, []string{TypeObject}) {
					d.p.add(d.pos(v), "a job's payload is an object: write type: object and its properties", "the schema of %s v%d must have type: object", t.Name, n)
				}
			},
		})
		if !hasSchema {
			d.p.add(d.pos(k), "add schema: {type: object, properties: {...}}", "version %d of %q has no schema", n, t.Name)
		}
	}
}

// number reads a YAML number.
func (d *decoder) number(what string, v *yaml.Node) (float64, bool) {
	if v.Kind == yaml.ScalarNode && (v.Tag == "!!int" || v.Tag == "!!float") {
		var f float64
		if err := v.Decode(&f); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	d.p.add(d.pos(v), "", "%s must be a finite number, not %s", what, describe(v))
	return 0, false
}

// count reads a non-negative integer.
func (d *decoder) count(what string, v *yaml.Node) (int, bool) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
		var n int64
		if err := v.Decode(&n); err == nil && n >= 0 && n <= math.MaxInt32 {
			return int(n), true
		}
	}
	d.p.add(d.pos(v), "", "%s must be a whole number from 0, not %s", what, describe(v))
	return 0, false
}
