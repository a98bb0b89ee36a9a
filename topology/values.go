package topology

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Readers of scalar values: each checks the node's type and range, reports
// what is wrong at the value's position, and returns an opt that says
// whether the value was set, or set but invalid.

// integerText matches integers too large for YAML to read as one (it reads
// them as floats).
var integerText = regexp.MustCompile(`^[-+]?[0-9_]+$`)

// typed reports whether v is a scalar with one of tags, reporting a problem
// naming key when it is not.
func (d *decoder) typed(key string, v *yaml.Node, want string, tags ...string) bool {
	if v.Kind == yaml.ScalarNode && slices.Contains(tags, v.ShortTag()) {
		return true
	}
	if isNull(v) {
		d.p.add(d.pos(v), "write a value, or remove the key to get the default", "%s has no value", key)
		return false
	}
	hint := ""
	switch {
	case v.Kind != yaml.ScalarNode:
	case want == "a string":
		hint = "quote it: " + strconv.Quote(v.Value)
	case want == "true or false" && v.ShortTag() == "!!str":
		hint = "YAML 1.2 reads yes, no, on and off as strings; write true or false"
	case v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		hint = "remove the quotes"
	}
	d.p.add(d.pos(v), hint, "%s must be %s, not %s", key, want, describe(v))
	return false
}

func (d *decoder) str(key string, v *yaml.Node) opt[string] {
	if !d.typed(key, v, "a string", "!!str") {
		return bad[string](d.pos(v))
	}
	return opt[string]{v: v.Value, set: true, pos: d.pos(v)}
}

func (d *decoder) boolean(key string, v *yaml.Node) opt[bool] {
	if !d.typed(key, v, "true or false", "!!bool") {
		return bad[bool](d.pos(v))
	}
	var b bool
	if err := v.Decode(&b); err != nil {
		d.p.add(d.pos(v), "", "%s must be true or false, not %q", key, v.Value)
		return bad[bool](d.pos(v))
	}
	return opt[bool]{v: b, set: true, pos: d.pos(v)}
}

// integer reads an integer in [lo, hi].
func (d *decoder) integer(key string, v *yaml.Node, lo, hi int64) opt[int64] {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float" && integerText.MatchString(v.Value) {
		d.p.add(d.pos(v), "", "%s is out of range: %s", key, v.Value)
		return bad[int64](d.pos(v))
	}
	if !d.typed(key, v, "an integer", "!!int") {
		return bad[int64](d.pos(v))
	}
	var i int64
	if err := v.Decode(&i); err != nil {
		d.p.add(d.pos(v), "", "%s is out of range: %s", key, v.Value)
		return bad[int64](d.pos(v))
	}
	if i < lo || i > hi {
		d.p.add(d.pos(v), "", "%s must be %s, not %d", key, rangeText(i, lo, hi), i)
		return bad[int64](d.pos(v))
	}
	return opt[int64]{v: i, set: true, pos: d.pos(v)}
}

// rangeText says what range i is out of, leaving out a bound that is only
// there to keep the value a sane size.
func rangeText(i, lo, hi int64) string {
	switch {
	case i < lo && hi >= math.MaxInt32:
		return fmt.Sprintf("at least %d", lo)
	case i > hi && lo <= math.MinInt32:
		return fmt.Sprintf("at most %d", hi)
	default:
		return fmt.Sprintf("between %d and %d", lo, hi)
	}
}

// number reads a number in [lo, hi].
func (d *decoder) number(key string, v *yaml.Node, lo, hi float64) opt[float64] {
	if !d.typed(key, v, "a number", "!!int", "!!float") {
		return bad[float64](d.pos(v))
	}
	var f float64
	if err := v.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.p.add(d.pos(v), "", "%s must be a finite number, not %s", key, v.Value)
		return bad[float64](d.pos(v))
	}
	if f < lo || f > hi {
		hiText := strconv.FormatFloat(hi, 'g', -1, 64)
		if math.IsInf(hi, 1) || hi == math.MaxFloat64 {
			d.p.add(d.pos(v), "", "%s must be at least %g, not %s", key, lo, v.Value)
		} else {
			d.p.add(d.pos(v), "", "%s must be between %g and %s, not %s", key, lo, hiText, v.Value)
		}
		return bad[float64](d.pos(v))
	}
	return opt[float64]{v: f, set: true, pos: d.pos(v)}
}

const durationHint = `write a number and a unit (ms, s, m, h or d), e.g. "500ms", "30s", "24h", "7d"`

// duration reads a duration.
func (d *decoder) duration(key string, v *yaml.Node) opt[time.Duration] {
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float") && v.Value != "0" {
		d.p.add(d.pos(v), durationHint, "%s needs a unit: %s", key, v.Value)
		return bad[time.Duration](d.pos(v))
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" { // "0"
		return opt[time.Duration]{set: true, pos: d.pos(v)}
	}
	if !d.typed(key, v, "a duration", "!!str") {
		return bad[time.Duration](d.pos(v))
	}
	dur, err := parseDuration(v.Value)
	if err != nil {
		hint := durationHint
		if errors.Is(err, errNegative) || errors.Is(err, errTooLarge) {
			hint = ""
		}
		d.p.add(d.pos(v), hint, "%s %q %v", key, v.Value, err)
		return bad[time.Duration](d.pos(v))
	}
	return opt[time.Duration]{v: dur, set: true, pos: d.pos(v)}
}

// millis reads a duration as whole milliseconds in [lo, hi] ms, as RabbitMQ
// wants TTLs.
func (d *decoder) millis(key string, v *yaml.Node, lo int64) opt[int64] {
	dur := d.duration(key, v)
	if !dur.set {
		return bad[int64](d.pos(v))
	}
	if dur.v%time.Millisecond != 0 {
		d.p.add(dur.pos, "RabbitMQ counts this in milliseconds", "%s %q is not a whole number of milliseconds", key, v.Value)
		return bad[int64](d.pos(v))
	}
	ms := dur.v.Milliseconds()
	if ms < lo {
		d.p.add(dur.pos, "", "%s must be at least %dms, not %s", key, lo, v.Value)
		return bad[int64](d.pos(v))
	}
	return opt[int64]{v: ms, set: true, pos: dur.pos}
}

const sizeHint = `write bytes as an integer, or with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. "512MiB"`

// size reads a byte count, an integer or a string with a unit.
func (d *decoder) size(key string, v *yaml.Node) opt[int64] {
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		return d.integer(key, v, 0, math.MaxInt64)
	}
	if !d.typed(key, v, "a size", "!!str") {
		return bad[int64](d.pos(v))
	}
	n, err := parseSize(v.Value)
	if err != nil {
		hint := sizeHint
		if errors.Is(err, errTooLarge) {
			hint = ""
		}
		d.p.add(d.pos(v), hint, "%s %q %v", key, v.Value, err)
		return bad[int64](d.pos(v))
	}
	return opt[int64]{v: n, set: true, pos: d.pos(v)}
}

// enum reads a string that must be one of allowed.
func (d *decoder) enum(key string, v *yaml.Node, allowed ...string) opt[string] {
	s := d.str(key, v)
	if s.set && !slices.Contains(allowed, s.v) {
		hint := suggest(s.v, allowed)
		if !strings.HasPrefix(hint, "did you mean") {
			hint = "" // the message lists them
		}
		d.p.add(s.pos, hint, "%s %q is not one of %s", key, s.v, strings.Join(allowed, ", "))
		return bad[string](d.pos(v))
	}
	return s
}

// argValue reads an AMQP argument value: a string, boolean, integer (as
// int64), number (as float64) or a list of those. Nested tables are refused:
// amqp091-go writes only its own amqp.Table type as one.
func (d *decoder) argValue(key string, v *yaml.Node) (any, bool) {
	v = resolve(v)
	switch v.Kind {
	case yaml.SequenceNode:
		list := make([]any, 0, len(v.Content))
		ok := true
		for _, item := range v.Content {
			x, itemOK := d.argValue(key, item)
			ok = ok && itemOK
			list = append(list, x)
		}
		return list, ok
	case yaml.MappingNode:
		d.p.add(d.pos(v), "write the value as a string, number, boolean or list", "argument %q cannot be a table", key)
		return nil, false
	case yaml.ScalarNode:
		switch v.ShortTag() {
		case "!!str", "!!timestamp":
			return v.Value, true
		case "!!bool":
			if b := d.boolean(key, v); b.set {
				return b.v, true
			}
		case "!!int":
			if i := d.integer(key, v, math.MinInt64, math.MaxInt64); i.set {
				return i.v, true
			}
		case "!!float":
			if integerText.MatchString(v.Value) {
				d.p.add(d.pos(v), "", "argument %q is out of range: %s", key, v.Value)
				return nil, false
			}
			if f := d.number(key, v, -math.MaxFloat64, math.MaxFloat64); f.set {
				return f.v, true
			}
		case "!!null":
			d.p.add(d.pos(v), "write a value, or remove the argument", "argument %q has no value", key)
		default:
			d.p.add(d.pos(v), "write a string, number, boolean or list", "argument %q cannot be %s", key, describe(v))
		}
	}
	return nil, false
}

// table reads a mapping of AMQP arguments, reporting whether all of it was
// valid.
func (d *decoder) table(key string, v *yaml.Node, fn func(name string, k *yaml.Node, value any)) bool {
	before := d.p.reported
	ok := d.names(v, key, func(name string, k, val *yaml.Node) {
		if x, ok := d.argValue(name, val); ok {
			fn(name, k, x)
		}
	})
	return ok && d.p.reported == before
}
