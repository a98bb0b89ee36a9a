package contract

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Direction is which readers a change breaks: new consumers reading old
// messages (Backward), old consumers reading new messages (Forward), or
// both. The zero value breaks nothing.
type Direction uint8

const (
	// Backward compatibility: a consumer using the new schema accepts
	// every payload valid under the old one (messages already in queues,
	// producers not yet upgraded).
	Backward Direction = 1 << iota
	// Forward compatibility: a consumer using the old schema accepts
	// every payload valid under the new one (workers not yet upgraded).
	Forward
	// Full is both directions.
	Full = Backward | Forward
)

// String returns "none", "backward", "forward" or "full".
func (d Direction) String() string {
	switch d & Full {
	case Backward:
		return "backward"
	case Forward:
		return "forward"
	case Full:
		return "full"
	}
	return "none"
}

// ParseDirection reads "backward", "forward" or "full" (the names
// String gives).
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "backward":
		return Backward, nil
	case "forward":
		return Forward, nil
	case "full":
		return Full, nil
	}
	return 0, fmt.Errorf("contract: compatibility %q: use backward, forward or full", s)
}

// Finding is one difference between two contracts of a job type's version.
type Finding struct {
	Type    string
	Version int
	// Path is where in the payload the difference is, as a JSON Pointer
	// with [] for an array's items and * for the properties an object
	// does not list: "/stops[]/at". It is "" for the payload itself and
	// for a version added or removed.
	Path string
	// Rule is the rule applied, a short stable id such as
	// "required-added" (docs/contracts.md#compatibility-rules lists
	// them); Message says what changed and why it matters.
	Rule    string
	Message string
	// Breaks is the compatibility the change breaks; 0 for a change that
	// breaks none (an addition, a description).
	Breaks Direction
}

// String returns the finding as "trip.book v2 /stops[]/at: rule (breaks
// backward): message".
func (f Finding) String() string {
	path := f.Path
	if path == "" {
		path = "/"
	}
	breaks := "compatible"
	if f.Breaks != 0 {
		breaks = "breaks " + f.Breaks.String()
	}
	return fmt.Sprintf("%s v%d %s: %s (%s): %s", f.Type, f.Version, path, f.Rule, breaks, f.Message)
}

// Change is what happened to a job type's version between two sets.
type Change string

// The changes of a version.
const (
	Unchanged Change = "unchanged" // in both, the same
	Changed   Change = "changed"   // in both, with differences (see the findings)
	Added     Change = "added"     // only in the new set
	Removed   Change = "removed"   // only in the old set
)

// VersionReport is the comparison of one version of a job type.
type VersionReport struct {
	Type     string
	Version  int
	Change   Change
	Findings []Finding
}

// Breaks returns the compatibility the version's changes break.
func (v *VersionReport) Breaks() Direction {
	var d Direction
	for _, f := range v.Findings {
		d |= f.Breaks
	}
	return d
}

// Report is the comparison of two sets of contracts, from Compare.
type Report struct {
	// Versions holds every version of every job type in either set,
	// by type name, then version.
	Versions []VersionReport
}

// Breaks returns the compatibility the changes break.
func (r *Report) Breaks() Direction {
	var d Direction
	for i := range r.Versions {
		d |= r.Versions[i].Breaks()
	}
	return d
}

// Compatible reports whether no change breaks any direction of d:
// Compatible(Backward) means new consumers read every old message.
func (r *Report) Compatible(d Direction) bool { return r.Breaks()&d == 0 }

// Breaking returns the findings that break a direction of d, in report
// order.
func (r *Report) Breaking(d Direction) []Finding {
	var out []Finding
	for _, v := range r.Versions {
		for _, f := range v.Findings {
			if f.Breaks&d != 0 {
				out = append(out, f)
			}
		}
	}
	return out
}

// Compare compares every version of every job type in old and new and
// says, for each difference, whether it is backward compatible (a
// consumer using new's schema accepts every payload valid under old's)
// and forward compatible (a consumer using old's schema accepts every
// payload valid under new's). The rules are in docs/contracts.md,
// "Compatibility rules". A type or version only in old breaks backward
// compatibility: consumers of new refuse its messages.
func Compare(old, new *Set) *Report {
	r := &Report{}
	names := old.Names()
	for _, n := range new.Names() {
		if _, ok := old.Types[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		ot, nt := old.Types[name], new.Types[name]
		var nums []int
		if ot != nil {
			nums = ot.Numbers()
		}
		if nt != nil {
			for _, n := range nt.Numbers() {
				if !slices.Contains(nums, n) {
					nums = append(nums, n)
				}
			}
		}
		slices.Sort(nums)
		for _, n := range nums {
			r.Versions = append(r.Versions, compareVersion(name, n, ot, nt))
		}
	}
	return r
}

func compareVersion(name string, n int, ot, nt *Type) VersionReport {
	var ov, nv *Version
	if ot != nil {
		ov = ot.Versions[n]
	}
	if nt != nil {
		nv = nt.Versions[n]
	}
	c := &comparer{typ: name, version: n}
	vr := VersionReport{Type: name, Version: n}
	switch {
	case nv == nil && nt == nil:
		vr.Change = Removed
		c.add("", "type-removed", Backward, "job type %s is gone from the new contracts; consumers using them refuse the messages of it still in queues (mark it deprecated instead, and remove it once none are left)", name)
	case nv == nil:
		vr.Change = Removed
		c.add("", "version-removed", Backward, "version %d is gone from the new contracts; consumers using them refuse its messages still in queues (mark it deprecated instead, and remove it once none are left)", n)
	case ov == nil && ot == nil:
		vr.Change = Added
		c.add("", "type-added", 0, "new job type %s", name)
	case ov == nil:
		vr.Change = Added
		c.add("", "version-added", 0, "new version %d", n)
	default:
		if !ov.Deprecated && nv.Deprecated {
			c.add("", "version-deprecated", 0, "version %d is deprecated now: producers should stop sending it", n)
		} else if ov.Deprecated && !nv.Deprecated {
			c.add("", "version-undeprecated", 0, "version %d is no longer deprecated", n)
		}
		if ov.Description != nv.Description {
			c.add("", "description-changed", 0, "the version's description changed")
		}
		c.schema("", orAny(ov.Schema), orAny(nv.Schema))
		vr.Change = Unchanged
		if len(c.findings) > 0 {
			vr.Change = Changed
		}
	}
	vr.Findings = c.findings
	return vr
}

// anySchema is the schema of a value with no schema: it allows any value.
var anySchema = &Schema{}

func orAny(s *Schema) *Schema {
	if s == nil {
		return anySchema
	}
	return s
}

// comparer collects the findings of one version.
type comparer struct {
	typ      string
	version  int
	findings []Finding
}

func (c *comparer) add(path, rule string, breaks Direction, format string, args ...any) {
	c.findings = append(c.findings, Finding{
		Type: c.typ, Version: c.version, Path: path, Rule: rule,
		Message: fmt.Sprintf(format, args...), Breaks: breaks,
	})
}

// schema compares the schemas o (old) and n (new) of the value at path.
func (c *comparer) schema(path string, o, n *Schema) {
	if !c.types(path, o, n) {
		return // no JSON type in common: the rest compares nothing
	}
	c.values(path, o, n)
	c.bounds(path, o, n)
	c.text(path, o, n)
	if o.Deprecated != n.Deprecated && path != "" {
		if n.Deprecated {
			c.add(path, "property-deprecated", 0, "deprecated now: producers should stop sending it")
		} else {
			c.add(path, "property-undeprecated", 0, "no longer deprecated")
		}
	}
	if o.HasDefault != n.HasDefault || (o.HasDefault && !sameValue(o.Default, n.Default)) {
		c.add(path, "default-changed", 0, "default %s → %s: consumers assume the new default when the value is absent", showDefault(o), showDefault(n))
	}
	if o.Allows(TypeObject) && n.Allows(TypeObject) {
		c.object(path, o, n)
	}
	if o.Allows(TypeArray) && n.Allows(TypeArray) && (o.Items != nil || n.Items != nil) {
		c.schema(itemsPath(path), orAny(o.Items), orAny(n.Items))
	}
}

func itemsPath(path string) string {
	if path == "" {
		return "/[]"
	}
	return path + "[]"
}

func showDefault(s *Schema) string {
	if !s.HasDefault {
		return "(none)"
	}
	return showValue(s.Default)
}

// types compares the type keywords; it reports whether the two schemas
// allow a JSON type in common.
func (c *comparer) types(path string, o, n *Schema) bool {
	var back, fwd bool // broken
	for _, t := range typeList(o) {
		if !n.Allows(t) {
			back = true
		}
	}
	for _, t := range typeList(n) {
		if !o.Allows(t) {
			fwd = true
		}
	}
	common := false
	for _, t := range typeList(o) {
		if n.Allows(t) || (t == TypeNumber && n.Allows(TypeInteger)) {
			common = true
		}
	}
	ot, nt := showTypes(o), showTypes(n)
	switch {
	case back && fwd:
		c.add(path, "type-changed", Full, "type %s → %s: each side sends values the other refuses", ot, nt)
	case back:
		c.add(path, "type-narrowed", Backward, "type %s → %s: new consumers refuse old values of the types no longer allowed", ot, nt)
	case fwd:
		c.add(path, "type-widened", Forward, "type %s → %s: old consumers refuse new values of the types added", ot, nt)
	}
	return common
}

// typeList is the types a schema allows, every one for a schema without
// a type.
func typeList(s *Schema) []string {
	if len(s.Type) == 0 {
		return jsonTypes
	}
	return s.Type
}

func showTypes(s *Schema) string {
	switch len(s.Type) {
	case 0:
		return "any"
	case 1:
		return s.Type[0]
	}
	return "[" + strings.Join(s.Type, ", ") + "]"
}

// values compares enum and const.
func (c *comparer) values(path string, o, n *Schema) {
	switch {
	case o.Enum == nil && n.Enum != nil:
		c.add(path, "enum-added", Backward, "enum %s added: new consumers refuse old values outside it", showValues(n.Enum))
	case o.Enum != nil && n.Enum == nil:
		c.add(path, "enum-removed", Forward, "enum %s removed: old consumers refuse new values outside it", showValues(o.Enum))
	case o.Enum != nil:
		if added := missing(n.Enum, o.Enum); len(added) > 0 {
			c.add(path, "enum-value-added", Forward, "enum value %s added: old consumers refuse it", showValues(added))
		}
		if removed := missing(o.Enum, n.Enum); len(removed) > 0 {
			c.add(path, "enum-value-removed", Backward, "enum value %s removed: new consumers refuse old messages with it", showValues(removed))
		}
	}
	switch {
	case !o.HasConst && n.HasConst:
		c.add(path, "const-added", Backward, "const %s added: new consumers refuse any other old value", showValue(n.Const))
	case o.HasConst && !n.HasConst:
		c.add(path, "const-removed", Forward, "const %s removed: old consumers refuse any other new value", showValue(o.Const))
	case o.HasConst && !sameValue(o.Const, n.Const):
		c.add(path, "const-changed", Full, "const %s → %s: each side refuses the other's value", showValue(o.Const), showValue(n.Const))
	}
}

// missing returns the values of a not in b.
func missing(a, b []any) []any {
	var out []any
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y any) bool { return sameValue(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}

// sameValue reports whether two JSON values are equal, 1 and 1.0 alike.
func sameValue(a, b any) bool { return showValue(a) == showValue(b) }

func showValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func showValues(vs []any) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = showValue(v)
	}
	return strings.Join(s, ", ")
}

// bound is a lower or an upper bound; a nil value is no bound.
type bound struct {
	value     *float64
	exclusive bool
}

// lower returns the tighter of minimum and exclusiveMinimum.
func lower(s *Schema) bound {
	b := bound{value: s.Minimum}
	if e := s.ExclusiveMinimum; e != nil && (b.value == nil || *e >= *b.value) {
		b = bound{value: e, exclusive: true}
	}
	return b
}

// upper returns the tighter of maximum and exclusiveMaximum.
func upper(s *Schema) bound {
	b := bound{value: s.Maximum}
	if e := s.ExclusiveMaximum; e != nil && (b.value == nil || *e <= *b.value) {
		b = bound{value: e, exclusive: true}
	}
	return b
}

func (b bound) show(lowerBound bool) string {
	if b.value == nil {
		return "none"
	}
	op := map[[2]bool]string{{true, false}: ">= ", {true, true}: "> ", {false, false}: "<= ", {false, true}: "< "}[[2]bool{lowerBound, b.exclusive}]
	return op + fmt.Sprint(*b.value)
}

// tighter compares bound n to bound o: 1 when n allows less, -1 when it
// allows more, 0 when the same. lowerBound tells a minimum from a maximum.
func tighter(o, n bound, lowerBound bool) int {
	switch {
	case o.value == nil && n.value == nil:
		return 0
	case o.value == nil:
		return 1
	case n.value == nil:
		return -1
	}
	ov, nv := *o.value, *n.value
	if !lowerBound {
		ov, nv = -ov, -nv
	}
	switch {
	case nv > ov:
		return 1
	case nv < ov:
		return -1
	case n.exclusive && !o.exclusive:
		return 1
	case o.exclusive && !n.exclusive:
		return -1
	}
	return 0
}

func countBound(p *int) bound {
	if p == nil {
		return bound{}
	}
	f := float64(*p)
	return bound{value: &f}
}

// bounds compares the numeric bounds and the bounds on lengths and counts.
func (c *comparer) bounds(path string, o, n *Schema) {
	check := []struct {
		keyword    string
		o, n       bound
		lowerBound bool
	}{
		{"minimum", lower(o), lower(n), true},
		{"maximum", upper(o), upper(n), false},
		{"minLength", countBound(o.MinLength), countBound(n.MinLength), true},
		{"maxLength", countBound(o.MaxLength), countBound(n.MaxLength), false},
		{"minItems", countBound(o.MinItems), countBound(n.MinItems), true},
		{"maxItems", countBound(o.MaxItems), countBound(n.MaxItems), false},
	}
	for _, b := range check {
		change := fmt.Sprintf("%s %s → %s", b.keyword, b.o.show(b.lowerBound), b.n.show(b.lowerBound))
		switch tighter(b.o, b.n, b.lowerBound) {
		case 1:
			c.add(path, "constraint-tightened", Backward, "%s: new consumers refuse old values outside the new bound", change)
		case -1:
			c.add(path, "constraint-loosened", Forward, "%s: old consumers refuse new values outside the old bound", change)
		}
	}
}

// text compares pattern and format.
func (c *comparer) text(path string, o, n *Schema) {
	check := []struct{ keyword, o, n string }{
		{"pattern", o.Pattern, n.Pattern},
		{"format", o.Format, n.Format},
	}
	for _, k := range check {
		switch {
		case k.o == k.n:
		case k.o == "":
			c.add(path, k.keyword+"-added", Backward, "%s %q added: new consumers refuse old values that do not match it", k.keyword, k.n)
		case k.n == "":
			c.add(path, k.keyword+"-removed", Forward, "%s %q removed: old consumers refuse new values that do not match it", k.keyword, k.o)
		default:
			c.add(path, k.keyword+"-changed", Full, "%s %q → %q: warren cannot tell which values both accept, so it assumes each side refuses some of the other's", k.keyword, k.o, k.n)
		}
	}
}

// propertyKind is how an object schema treats a property name.
type propertyKind int

const (
	anyValue   propertyKind = iota // not listed, and any additional property is allowed
	listed                         // under properties
	additional                     // not listed: the additionalProperties schema applies
	refused                        // not listed, and additionalProperties is false
)

// property returns the schema that applies to property name of s, and
// how.
func property(s *Schema, name string) (*Schema, propertyKind) {
	if p, ok := s.Properties[name]; ok {
		return p, listed
	}
	switch {
	case s.Closed:
		return nil, refused
	case s.AdditionalProperties != nil:
		return s.AdditionalProperties, additional
	}
	return anySchema, anyValue
}

// additionalKind is how s treats properties it does not list.
func additionalKind(s *Schema) propertyKind {
	switch {
	case s.Closed:
		return refused
	case s.AdditionalProperties != nil:
		return additional
	}
	return anyValue
}

// object compares the properties of two object schemas.
func (c *comparer) object(path string, o, n *Schema) {
	var names []string
	for _, list := range [][]string{o.PropertyOrder, o.Required, n.PropertyOrder, n.Required} {
		for _, name := range list {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	for _, name := range names {
		c.property(path+"/"+escape(name), name, o, n)
	}
	// The properties neither lists.
	star := path + "/*"
	switch ok, nk := additionalKind(o), additionalKind(n); {
	case ok == nk && ok == additional:
		c.schema(star, o.AdditionalProperties, n.AdditionalProperties)
	case ok == nk:
	case nk == refused:
		c.add(path, "additional-properties-closed", Backward, "additionalProperties: false now: new consumers refuse old messages with properties it does not list")
	case ok == refused:
		c.add(path, "additional-properties-opened", Forward, "additionalProperties: false no longer: old consumers refuse new messages with properties they do not list")
	default:
		c.schema(star, additionalSchema(o), additionalSchema(n))
	}
}

// property1 is the schema of a property s does not list, when s allows it.
func additionalSchema(s *Schema) *Schema {
	if s.AdditionalProperties != nil {
		return s.AdditionalProperties
	}
	return anySchema
}

// escape escapes a property name for a JSON Pointer.
func escape(name string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

// property compares property name of the object schemas o and n.
func (c *comparer) property(path, name string, o, n *Schema) {
	op, ok := property(o, name)
	np, nk := property(n, name)
	oReq, nReq := o.IsRequired(name), n.IsRequired(name)

	switch {
	case ok == listed && nk == listed:
		c.schema(path, op, np)
	case ok == listed: // removed
		switch nk {
		case refused:
			c.add(path, "property-removed-closed", Backward, "property %q removed and additionalProperties is false: new consumers refuse old messages that carry it", name)
		case additional:
			c.schema(path, op, np)
		default:
			if !oReq {
				c.add(path, "property-removed", 0, "property %q removed; consumers still accept it, as any property not listed", name)
			}
		}
	case nk == listed: // added
		switch ok {
		case refused:
			c.add(path, "property-added-closed", Forward, "property %q added, and the old schema has additionalProperties: false: old consumers refuse new messages that carry it", name)
		case additional:
			c.schema(path, op, np)
		default:
			if !nReq {
				c.add(path, "property-added", 0, "optional property %q added", name)
			}
		}
	}

	switch {
	case !oReq && nReq:
		rule := "optional-to-required"
		if ok != listed {
			rule = "required-added"
		}
		if np != nil && np.HasDefault {
			c.add(path, rule, 0, "property %q is required now, with default %s: consumers assume the default in old messages without it (warren's rule; a JSON Schema validator still refuses them)", name, showValue(np.Default))
		} else {
			c.add(path, rule, Backward, "property %q is required now and has no default: new consumers refuse old messages without it", name)
		}
	case oReq && !nReq:
		rule := "required-to-optional"
		if nk != listed {
			rule = "required-removed"
		}
		if op != nil && op.HasDefault {
			c.add(path, rule, 0, "property %q is not required any more; old consumers assume its default %s in new messages without it (warren's rule; a JSON Schema validator still refuses them)", name, showValue(op.Default))
		} else {
			c.add(path, rule, Forward, "property %q is not required any more: old consumers refuse new messages without it", name)
		}
	}
}
