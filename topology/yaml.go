package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Generic strict decoding of yaml.Node trees: every problem is reported and
// decoding goes on, so one run shows them all. decode.go uses these to read
// the topology file's sections.

type decoder struct {
	file string
	p    *collector
	// meant lists the known keys that unknown keys were probably meant to
	// be, in the order found.
	meant []string
	// entities counts the sections' entries decoded (see counted).
	entities int
}

// entry decodes one entry of a section with fn, which reports whether the
// value was a mapping, and returns what decoding learned about it.
func (d *decoder) entry(fn func() bool) entry {
	problems, meant := d.p.reported, len(d.meant)
	var e entry
	e.broken = !fn()
	e.suspect = d.p.reported > problems
	for _, k := range d.meant[meant:] {
		if e.meant == nil {
			e.meant = map[string]bool{}
		}
		e.meant[k] = true
	}
	return e
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.file, Line: max(n.Line, 1), Column: max(n.Column, 1)}
}

// yamlLine matches the YAML library's syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data and returns the root of its single document, or nil
// when the file is empty or a problem was reported.
func (d *decoder) document(data []byte) *yaml.Node {
	if !d.small(data) {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeYAML(dec, &doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntaxError(data, err)
		}
		return nil
	}
	var next yaml.Node
	switch err := decodeYAML(dec, &next); {
	case err == nil:
		at := &next
		if len(next.Content) > 0 {
			at = next.Content[0]
		}
		d.p.add(d.pos(at), `keep one document per file: remove the "---" line or split the file`,
			"a topology file holds one YAML document, this is a second one")
		return nil
	case !errors.Is(err, io.EOF):
		d.syntaxError(data, err)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if !d.bounded(root) {
		return nil
	}
	return root
}

// decodeYAML decodes one document, turning a panic in the YAML library into
// an error: bytes from outside must never crash the caller.
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("yaml: %v", v)
		}
	}()
	return dec.Decode(n)
}

func (d *decoder) syntaxError(data []byte, err error) {
	line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil && n > 0 {
			line = n
		}
		msg = m[2]
	}
	// The YAML library often reports the line where the enclosing block
	// starts, or none. The first prefix of the file that fails the same way
	// ends at the line that is wrong.
	if n := failingLine(data, msg); n > 0 {
		line = n
	}
	if strings.HasPrefix(msg, "exceeded max depth") {
		d.tooDeep(Pos{File: d.file, Line: line, Column: 1})
		return
	}
	d.p.add(Pos{File: d.file, Line: line, Column: 1}, "", "invalid YAML: %s", msg)
}

// failingLine returns the number of lines of the shortest prefix of data
// whose parse fails with msg, or 0. Only small files are searched: the search
// parses the file once per line.
func failingLine(data []byte, msg string) int {
	const maxBytes, maxLines = 32 << 10, 1000
	if len(data) > maxBytes {
		return 0
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxLines {
		return 0
	}
	end := 0
	for i, l := range lines {
		end += len(l)
		err := parseAll(data[:end])
		if err == nil {
			continue
		}
		text := err.Error()
		if m := yamlLine.FindStringSubmatch(text); m != nil {
			text = m[2]
		}
		if strings.TrimPrefix(text, "yaml: ") == msg {
			return i + 1
		}
	}
	return 0
}

// parseAll parses every document in data.
func parseAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := decodeYAML(dec, &n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "empty"
		case "!!bool":
			return "a boolean"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!str":
			return "a string"
		case "!!timestamp":
			return "a timestamp"
		default:
			return "a value tagged " + n.ShortTag()
		}
	}
	return "an alias"
}

type pair struct{ key, val *yaml.Node }

// pairs returns a mapping's entries in file order, with "<<" merge keys
// expanded (explicit keys win, then earlier merged mappings), reporting
// duplicate and non-scalar keys.
func (d *decoder) pairs(n *yaml.Node) []pair {
	var out, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergeSources(v)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.p.add(d.pos(k), "write a plain name as the key", "a key must be a name, not %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.p.add(d.pos(k), "YAML keeps only one of them: remove or merge one",
				"duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, pair{k, v})
	}
	for _, kv := range merged {
		if _, ok := seen[kv.key.Value]; !ok {
			seen[kv.key.Value] = kv.key
			out = append(out, kv)
		}
	}
	return out
}

func (d *decoder) mergeSources(v *yaml.Node) []pair {
	v = resolve(v)
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			item = resolve(item)
			if item.Kind != yaml.MappingNode {
				d.p.add(d.pos(item), "", "<< merges mappings, not %s", describe(item))
				continue
			}
			out = append(out, d.pairs(item)...)
		}
		return out
	}
	d.p.add(d.pos(v), "", "<< merges mappings, not %s", describe(v))
	return nil
}

// fields maps each key an object knows to the function that reads its value.
type fields map[string]func(key, val *yaml.Node)

// extensionKeys in fields stands for every key starting with "x-".
const extensionKeys = "x-*"

// object reads a mapping whose keys are fixed. An empty (null) value is an
// empty object. It reports whether the value was a mapping (or empty).
func (d *decoder) object(n *yaml.Node, what string, fs fields) bool {
	return objectOf(d, n, what, fs, func(f func(key, val *yaml.Node), key, val *yaml.Node) { f(key, val) })
}

// objectOf reads a mapping whose keys are fixed, as object does, with a
// table from each key it knows to a value that read uses to read the key's
// value. The tables of the sections' entries are package variables of
// functions that take the entry: built once, rather than once for each
// entry of a file that may have tens of thousands.
func objectOf[F any](d *decoder, n *yaml.Node, what string, fs map[string]F, read func(f F, key, val *yaml.Node)) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.p.add(d.pos(n), "", "%s must be a mapping, not %s", what, describe(n))
		return false
	}
	for _, kv := range d.pairs(n) {
		f, ok := fs[kv.key.Value]
		if !ok && strings.HasPrefix(kv.key.Value, "x-") {
			f, ok = fs[extensionKeys]
		}
		if !ok {
			d.unknownKey(kv.key, what, maps.Keys(fs))
			continue
		}
		read(f, kv.key, resolve(kv.val))
	}
	return true
}

var retryKeys = []string{"max_attempts", "initial_interval", "max_interval", "multiplier", "jitter"}

// unknownKey reports key k of an object that knows keys.
func (d *decoder) unknownKey(k *yaml.Node, what string, keys iter.Seq[string]) {
	if d.p.full() {
		// Not listed: no need for a hint, whose search is the costly part.
		d.p.add(d.pos(k), "", "unknown key")
		return
	}
	known := slices.DeleteFunc(slices.Collect(keys), func(name string) bool { return name == extensionKeys })
	hint := suggest(k.Value, known)
	if m := closest(k.Value, known); m != "" {
		d.meant = append(d.meant, m)
	}
	switch {
	case slices.Contains(known, "retry") && slices.Contains(retryKeys, k.Value):
		hint = fmt.Sprintf("%s goes in the retry block: retry: {%s: ...}", k.Value, k.Value)
	case strings.HasPrefix(k.Value, "x-") && slices.Contains(known, "arguments"):
		hint = fmt.Sprintf("raw arguments go in the arguments block: arguments: {%s: ...}", k.Value)
	}
	d.p.add(d.pos(k), hint, "unknown key %q in %s", k.Value, what)
}

// names reads a mapping from names to entries, calling fn for each entry in
// file order. An empty (null) value has no entries. It reports whether the
// value was a mapping (or empty).
func (d *decoder) names(n *yaml.Node, what string, fn func(name string, key, val *yaml.Node)) bool {
	n = resolve(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		d.p.add(d.pos(n), "", "%s must be a mapping from names to settings, not %s", what, describe(n))
		return false
	}
	for _, kv := range d.pairs(n) {
		if kv.key.ShortTag() != "!!str" {
			d.p.add(d.pos(kv.key), "quote it: "+strconv.Quote(kv.key.Value),
				"a name in %s must be a string, not %s", what, describe(kv.key))
			continue
		}
		fn(kv.key.Value, kv.key, kv.val)
	}
	return true
}

// list reads a sequence; an empty (null) value has no items. It reports
// whether the value was a list (or empty).
func (d *decoder) list(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	n = resolve(n)
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		d.p.add(d.pos(n), "write one item per line, each starting with \"- \"", "%s must be a list, not %s", what, describe(n))
		return nil, false
	}
	items := make([]*yaml.Node, len(n.Content))
	for i, item := range n.Content {
		items[i] = resolve(item)
	}
	return items, true
}
