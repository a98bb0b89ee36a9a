// Package gogen writes Go code from contracts (package contract): for each
// job type and version, the payload's struct, and functions that publish
// and handle jobs of that version with it, so that a payload's typo is a
// compile error. `warren generate go` runs it; docs/contracts.md, section
// "Generated Go code", describes what it writes.
//
// It is internal: the generated code depends on packages broker and worker
// only, and what gogen writes may change between warren releases without
// breaking anyone who regenerates.
package gogen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/warrenmq/warren/contract"
)

// Options are what Generate needs besides the contracts.
type Options struct {
	// Package is the generated file's package name. Required.
	Package string
	// Source is the topology or contracts file and Output the file
	// written ("" for stdout), both relative to the output's directory:
	// the generated file's header shows the command that writes it again
	// there, as go generate runs it.
	Source string
	Output string
}

// ErrNames is wrapped by Generate's error when the contracts' names do
// not make Go names: two of them make the same one, or one has no letters
// or digits. The error lists every such name.
var ErrNames = errors.New("gogen: the contracts' names do not make distinct Go names")

// Generate returns one gofmt'ed Go file declaring, for every job type of
// set (sorted by name) and each of its versions (ascending), the payload
// type and its Publish and Handle functions. The same set and options
// always give the same bytes.
func Generate(set *contract.Set, opts Options) ([]byte, error) {
	if !token.IsIdentifier(opts.Package) || opts.Package == "_" {
		return nil, fmt.Errorf("gogen: package name %q is not a Go identifier; name the package the file goes in, e.g. contracts", opts.Package)
	}
	if len(set.Types) == 0 {
		return nil, fmt.Errorf("gogen: %s declares no job types, so there is nothing to generate; declare them under contracts (see docs/contracts.md)", opts.Source)
	}
	g := &gen{names: map[string]origin{"Publisher": {desc: "the Publisher interface"}}, structs: map[string]bool{}}
	for _, name := range set.Names() {
		g.jobType(set.Types[name])
	}
	if len(g.problems) > 0 {
		return nil, fmt.Errorf("%w:\n  %s\nrename the job types or properties: a Go name is made by splitting a name at every character other than a letter or digit and title-casing the words", ErrNames, strings.Join(g.problems, "\n  "))
	}
	var out bytes.Buffer
	g.header(&out, opts)
	out.Write(g.body.Bytes())
	src, err := format.Source(out.Bytes())
	if err != nil {
		// A bug of gogen's, not the user's: say so with the source.
		return nil, fmt.Errorf("gogen: the generated code does not parse (%w); please report it with the contracts that gave it:\n%s", err, out.Bytes())
	}
	return src, nil
}

// origin is what a Go name was made for.
type origin struct {
	jobType string // "" for the file's own declarations
	desc    string
}

type gen struct {
	body     bytes.Buffer
	names    map[string]origin
	problems []string
	clashed  map[[2]string]bool // job type pairs reported
	usesTime bool
	structs  map[string]bool // the struct types written, by name
	queue    []decl          // named types still to write, for the current version
}

// declare records the Go name name, reporting a clash with a name
// declared before.
func (g *gen) declare(name string, o origin) {
	prev, ok := g.names[name]
	if !ok {
		g.names[name] = o
		return
	}
	if prev.jobType != "" && prev.jobType != o.jobType {
		pair := [2]string{prev.jobType, o.jobType}
		if g.clashed == nil {
			g.clashed = map[[2]string]bool{}
		}
		if !g.clashed[pair] {
			g.clashed[pair] = true
			g.problems = append(g.problems, fmt.Sprintf("job types %q and %q clash: both make the Go name %s", prev.jobType, o.jobType, name))
		}
		return
	}
	g.problems = append(g.problems, fmt.Sprintf("%s and %s both make the Go name %s", prev.desc, o.desc, name))
}

func (g *gen) printf(format string, args ...any) { fmt.Fprintf(&g.body, format, args...) }

// comment writes text as a // comment, line by line, with a blank comment
// line between paragraphs; empty paragraphs are left out.
func (g *gen) comment(indent string, paragraphs ...string) {
	g.body.WriteString(commentText(indent, paragraphs...))
}

func commentText(indent string, paragraphs ...string) string {
	var b strings.Builder
	first := true
	for _, p := range paragraphs {
		p = strings.TrimSpace(strings.ReplaceAll(p, "\r", ""))
		if p == "" {
			continue
		}
		if !first {
			b.WriteString(indent + "//\n")
		}
		first = false
		for _, line := range strings.Split(p, "\n") {
			line = strings.TrimRight(line, " \t")
			if line == "" {
				b.WriteString(indent + "//\n")
				continue
			}
			for _, l := range wrap(line, commentWidth) {
				b.WriteString(indent + "// " + l + "\n")
			}
		}
	}
	return b.String()
}

// commentWidth is the most characters a comment line's text takes before
// it is wrapped.
const commentWidth = 76

// wrap breaks line at spaces into lines of at most width characters
// (longer words stay whole). An indented line (code, in a doc comment) is
// left as it is.
func wrap(line string, width int) []string {
	if utf8.RuneCountInString(line) <= width || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
		return []string{line}
	}
	var out []string
	cur := ""
	for _, w := range strings.Fields(line) {
		switch {
		case cur == "":
			cur = w
		case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(w) <= width:
			cur += " " + w
		default:
			out = append(out, cur)
			cur = w
		}
	}
	return append(out, cur)
}

func (g *gen) header(out *bytes.Buffer, opts Options) {
	args := "generate go -f " + shellQuote(opts.Source) + " --package " + opts.Package
	if opts.Output != "" {
		args += " -o " + shellQuote(opts.Output)
	}
	fmt.Fprintf(out, "// Code generated by warren generate go; DO NOT EDIT.\n")
	fmt.Fprintf(out, "//\n// Written from the contracts of %s. To write it again from the\n", opts.Source)
	fmt.Fprintf(out, "// contracts, run go generate with this line in a Go file of the package:\n//\n")
	fmt.Fprintf(out, "//\t//go:generate go run github.com/warrenmq/warren/cmd/warren %s\n//\n", args)
	fmt.Fprintf(out, "// or, in this file's directory:\n//\n//\twarren %s\n\n", args)
	fmt.Fprintf(out, "package %s\n\nimport (\n\t\"context\"\n", opts.Package)
	if g.usesTime {
		fmt.Fprintf(out, "\t\"time\"\n")
	}
	fmt.Fprintf(out, "\n\t\"github.com/warrenmq/warren/broker\"\n\t\"github.com/warrenmq/warren/worker\"\n)\n\n")
	out.WriteString(commentText("",
		"Publisher publishes jobs: a *broker.Publisher is one, and so is a fake in tests."))
	fmt.Fprintf(out, "type Publisher interface {\n\tPublish(ctx context.Context, job broker.Job, opts ...broker.PublishOption) error\n}\n\n")
	fmt.Fprintf(out, "var _ Publisher = (*broker.Publisher)(nil)\n")
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func (g *gen) jobType(t *contract.Type) {
	base := GoName(t.Name)
	if base == "" {
		g.problems = append(g.problems, fmt.Sprintf("job type %q has no letters or digits to make a Go name of", t.Name))
		return
	}
	typeConst := base + "Type"
	g.declare(typeConst, origin{t.Name, fmt.Sprintf("the constant of job type %q", t.Name)})
	g.printf("\n")
	g.comment("", fmt.Sprintf("%s is the job type %s.", typeConst, strconv.Quote(t.Name)), t.Description)
	g.printf("const %s = %s\n", typeConst, strconv.Quote(t.Name))
	numbers := t.Numbers()
	for i, n := range numbers {
		var successor string
		for _, later := range numbers[i+1:] {
			if !t.Versions[later].Deprecated {
				successor = fmt.Sprintf("%sV%d", base, later)
			}
		}
		g.version(t, t.Versions[n], base, typeConst, successor)
	}
}

// decl is a named type to write: a struct or a string enum.
type decl struct {
	name   string
	schema *contract.Schema
	role   string // what it is the type of, e.g. "the items of TripBookV2.Stops"
	enum   []string
}

func (g *gen) version(t *contract.Type, v *contract.Version, base, typeConst, successor string) {
	name := fmt.Sprintf("%sV%d", base, v.Number)
	what := fmt.Sprintf("version %d of %q", v.Number, t.Name)
	g.declare(name, origin{t.Name, what})
	g.declare("Publish"+name, origin{t.Name, what})
	g.declare("Handle"+name, origin{t.Name, what})

	s := v.Schema
	docs := []string{
		fmt.Sprintf("%s is the payload of version %d of job type %q (%s).", name, v.Number, t.Name, typeConst),
		s.Title, v.Description, s.Description,
	}
	if v.Deprecated {
		docs = append(docs, fmt.Sprintf("Version %d is deprecated: producers should stop sending it; consumers still handle it.", v.Number))
	}
	g.printf("\n")
	g.comment("", docs...)
	if len(s.PropertyOrder) > 0 {
		g.printf("type %s struct {\n", name)
		g.fields(name, s, t.Name, what)
		g.printf("}\n")
	} else {
		// An object without properties is a map; its values' named
		// type, if any, is called <name>Value.
		elem := "any"
		if s.AdditionalProperties != nil {
			elem = g.goType(s.AdditionalProperties, name+"Value", "the values of "+name, t.Name, what)
		}
		g.printf("type %s map[string]%s\n", name, elem)
	}
	for i := 0; i < len(g.queue); i++ {
		g.namedType(g.queue[i], t.Name, what)
	}
	g.queue = g.queue[:0]

	pub := fmt.Sprintf("Publish%s publishes v as a job of type %s, version %d, with p.", name, typeConst, v.Number)
	pubMore := fmt.Sprintf("Options are broker's (To, ToQueue, At, In, Expire, UniqueKey, ...). For a job id, headers or a priority, publish a broker.Job{Type: %s, Version: %d, Payload: v} yourself.", typeConst, v.Number)
	var deprecated string
	if v.Deprecated {
		deprecated = fmt.Sprintf("Deprecated: version %d of %q is deprecated; stop publishing it.", v.Number, t.Name)
		if successor != "" {
			deprecated = fmt.Sprintf("Deprecated: version %d of %q is deprecated; publish a %s with Publish%s.", v.Number, t.Name, successor, successor)
		}
	}
	g.printf("\n")
	g.comment("", pub+" "+pubMore, deprecated)
	g.printf("func Publish%s(ctx context.Context, p Publisher, v %s, opts ...broker.PublishOption) error {\n", name, name)
	g.printf("\treturn p.Publish(ctx, broker.Job{Type: %s, Version: %d, Payload: v}, opts...)\n}\n", typeConst, v.Number)

	handle := fmt.Sprintf("Handle%s registers h on m for the jobs of type %s and version %d", name, typeConst, v.Number)
	if v.Number == 1 {
		handle += " (and the unversioned ones, which are version 1)"
	}
	handle += fmt.Sprintf(", with each payload decoded into a %s as worker.Typed decodes it: a payload that does not decode dead-letters its job. It panics as worker.Mux.HandleVersion does, e.g. when the version already has a handler.", name)
	g.printf("\n")
	g.comment("", handle)
	g.printf("func Handle%s(m *worker.Mux, h func(ctx context.Context, job *worker.Job, v %s) error) {\n", name, name)
	g.printf("\tm.HandleVersion(%s, %d, worker.Typed(h))\n}\n", typeConst, v.Number)
}

// fields writes the fields of struct name, made of object schema s.
func (g *gen) fields(name string, s *contract.Schema, jobType, what string) {
	seen := map[string]string{}
	for _, prop := range s.PropertyOrder {
		ps := s.Properties[prop]
		desc := fmt.Sprintf("property %q of %s (%s)", prop, what, name)
		field := GoName(prop)
		if field == "" {
			g.problems = append(g.problems, desc+" has no letters or digits to make a Go name of")
			continue
		}
		if strings.ContainsAny(prop, "\"\\`,") || prop == "-" || strings.IndexFunc(prop, func(r rune) bool { return r < ' ' || r == 0x7f }) >= 0 {
			g.problems = append(g.problems, desc+" cannot be a struct tag's key: it is - or has a comma, a quote, a backslash, a backquote or a control character")
			continue
		}
		if prev, ok := seen[field]; ok {
			g.problems = append(g.problems, fmt.Sprintf("properties %q and %q of %s both make the field %s.%s", prev, prop, what, name, field))
			continue
		}
		seen[field] = prop
		required := s.IsRequired(prop)
		typ := g.goType(ps, name+field, name+"."+field, jobType, what)
		if !required && g.structs[typ] {
			// An optional object must be able to be absent: a struct
			// value is always sent, so its field is a pointer.
			typ = "*" + typ
		}

		var notes []string
		if c := constraints(ps); c != "" {
			notes = append(notes, c)
		}
		if required {
			notes = append(notes, "Required.")
		}
		var deprecated string
		if ps.Deprecated {
			deprecated = "Deprecated: the contract deprecates this property; stop setting it."
		}
		g.comment("\t", ps.Title, ps.Description, strings.Join(notes, " "), deprecated)
		tag := prop
		if !required {
			tag += ",omitempty"
		}
		g.printf("\t%s %s `msgpack:%q json:%q`\n", field, typ, tag, tag)
	}
}

// goType returns the Go type of values of schema s. A named type made for
// it (a struct or a string enum) is called name and queued for writing;
// role says what it is the type of.
func (g *gen) goType(s *contract.Schema, name, role, jobType, what string) string {
	var types []string
	nullable := false
	for _, t := range s.Type {
		if t == contract.TypeNull {
			nullable = true
			continue
		}
		types = append(types, t)
	}
	switch {
	case len(s.Type) == 0 && len(s.PropertyOrder) > 0:
		types = []string{contract.TypeObject}
	case len(s.Type) == 0 && s.Items != nil:
		types = []string{contract.TypeArray}
	case len(s.Type) == 0 && len(stringEnum(s)) > 0:
		types = []string{contract.TypeString}
	case len(types) == 2 && slices.Contains(types, contract.TypeInteger) && slices.Contains(types, contract.TypeNumber):
		types = []string{contract.TypeNumber}
	}
	if len(types) != 1 {
		return "any"
	}
	var typ string
	switch types[0] {
	case contract.TypeString:
		switch values := stringEnum(s); {
		case values != nil:
			g.declare(name, origin{jobType, fmt.Sprintf("the enum type of %s", role)})
			g.queue = append(g.queue, decl{name: name, schema: s, role: role, enum: values})
			typ = name
		case s.Format == "date-time":
			g.usesTime = true
			typ = "time.Time"
		default:
			typ = "string"
		}
	case contract.TypeInteger:
		typ = "int64"
	case contract.TypeNumber:
		typ = "float64"
	case contract.TypeBoolean:
		typ = "bool"
	case contract.TypeArray:
		elem := "any"
		if s.Items != nil {
			elem = g.goType(s.Items, name, "the items of "+role, jobType, what)
		}
		return "[]" + elem // nil is null already
	case contract.TypeObject:
		if len(s.PropertyOrder) == 0 {
			elem := "any"
			if s.AdditionalProperties != nil {
				elem = g.goType(s.AdditionalProperties, name, "the values of "+role, jobType, what)
			}
			return "map[string]" + elem // nil is null already
		}
		g.declare(name, origin{jobType, fmt.Sprintf("the struct of %s", role)})
		g.structs[name] = true
		g.queue = append(g.queue, decl{name: name, schema: s, role: role})
		typ = name
	}
	if nullable {
		typ = "*" + typ
	}
	return typ
}

// stringEnum returns the strings an enum or const of strings allows, nil
// when s is not one. A null among them is left out (the field is a
// pointer).
func stringEnum(s *contract.Schema) []string {
	values := s.Enum
	if values == nil && s.HasConst {
		values = []any{s.Const}
	}
	var out []string
	for _, v := range values {
		switch v := v.(type) {
		case nil:
		case string:
			out = append(out, v)
		default:
			return nil
		}
	}
	return out
}

// namedType writes a queued struct or enum type.
func (g *gen) namedType(d decl, jobType, what string) {
	g.printf("\n")
	if d.enum == nil {
		g.comment("", fmt.Sprintf("%s is the type of %s.", d.name, d.role), d.schema.Title)
		g.printf("type %s struct {\n", d.name)
		g.fields(d.name, d.schema, jobType, what)
		g.printf("}\n")
		return
	}
	g.comment("", fmt.Sprintf("%s is the type of %s: one of the constants below.", d.name, d.role))
	g.printf("type %s string\n\n", d.name)
	g.comment("", fmt.Sprintf("The values of %s.", d.name))
	g.printf("const (\n")
	for _, v := range d.enum {
		c := d.name + GoName(v)
		if GoName(v) == "" {
			c = d.name + "Empty"
		}
		g.declare(c, origin{jobType, fmt.Sprintf("the value %q of %s", v, d.role)})
		g.printf("\t%s %s = %s\n", c, d.name, strconv.Quote(v))
	}
	g.printf(")\n")
}

// constraints describes what s requires of a value beyond its Go type, as
// a sentence, or "".
func constraints(s *contract.Schema) string {
	var cs []string
	num := func(k string, f *float64) {
		if f != nil {
			cs = append(cs, k+" "+strconv.FormatFloat(*f, 'g', -1, 64))
		}
	}
	count := func(k string, n *int) {
		if n != nil {
			cs = append(cs, k+" "+strconv.Itoa(*n))
		}
	}
	num("minimum", s.Minimum)
	num("maximum", s.Maximum)
	num("exclusiveMinimum", s.ExclusiveMinimum)
	num("exclusiveMaximum", s.ExclusiveMaximum)
	count("minLength", s.MinLength)
	count("maxLength", s.MaxLength)
	count("minItems", s.MinItems)
	count("maxItems", s.MaxItems)
	if s.Pattern != "" {
		cs = append(cs, "pattern "+strconv.Quote(s.Pattern))
	}
	if s.Format != "" && s.Format != "date-time" {
		cs = append(cs, "format "+s.Format)
	}
	if stringEnum(s) == nil {
		if s.Enum != nil {
			cs = append(cs, "one of "+jsonText(s.Enum))
		}
		if s.HasConst {
			cs = append(cs, "const "+jsonText(s.Const))
		}
	}
	if s.HasDefault {
		cs = append(cs, "default "+jsonText(s.Default))
	}
	if len(cs) == 0 {
		return ""
	}
	return "Schema: " + strings.Join(cs, "; ") + "."
}

// jsonText is v as JSON (maps with sorted keys), on one line.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
