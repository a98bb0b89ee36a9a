package contract

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// ErrMismatch is wrapped by the error of a payload that does not match its
// contract (MismatchError).
var ErrMismatch = errors.New("payload does not match its contract")

// MismatchError says how a payload breaks its contract.
type MismatchError struct {
	Type    string
	Version int
	// Problems lists each way the payload breaks the schema, as the JSON
	// Pointer of the value and what is wrong with it, sorted; at most 10.
	Problems []string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("contract: the payload of %s v%d does not match its contract: %s", e.Type, e.Version, strings.Join(e.Problems, "; "))
}

// Unwrap returns ErrMismatch.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// maxMismatches is the most problems a MismatchError lists.
const maxMismatches = 10

// validators holds each version's compiled schema.
type validators map[typeVersion]*jsonschema.Schema

type typeVersion struct {
	jobType string
	version int
}

var printer = message.NewPrinter(language.English)

// compile compiles every version's schema for Validate; a schema the
// validator refuses is a problem at its version.
func compile(set *Set, p *problems) {
	set.validators = validators{}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, name := range set.Names() {
		t := set.Types[name]
		for _, n := range t.Numbers() {
			v := t.Versions[n]
			if v.Schema == nil {
				continue
			}
			url := fmt.Sprintf("warren:///contracts/%s/%d.json", name, n)
			if err := c.AddResource(url, v.Schema.raw); err != nil {
				p.add(v.Pos, "", "the schema of %s v%d: %v", name, n, err)
				continue
			}
			sch, err := c.Compile(url)
			if err != nil {
				p.add(v.Pos, "", "the schema of %s v%d: %v", name, n, err)
				continue
			}
			set.validators[typeVersion{name, n}] = sch
		}
	}
}

// Validate checks payload, a job's payload as MessagePack decodes it into
// an interface value (maps, lists, strings, numbers, booleans, nil, []byte
// and time.Time), against the contract of version version of jobType
// (0 is version 1). Binary values are checked as base64 strings and times
// as RFC 3339 strings. An absent property with a default is checked as
// its default: a consumer assumes it (docs/contracts.md#compatibility-rules),
// so a property made required with a default accepts older payloads. A payload that breaks the schema gives a
// *MismatchError, a type or version the set does not declare an error
// wrapping ErrNoContract.
//
// Set.Validate satisfies broker.PayloadValidator and
// worker.PayloadValidator.
func (s *Set) Validate(jobType string, version int, payload any) error {
	v, err := s.Lookup(jobType, version)
	if err != nil {
		return err
	}
	sch := s.validators[typeVersion{v.Type, v.Number}]
	if sch == nil {
		return fmt.Errorf("%w for %s v%d: its schema did not compile", ErrNoContract, v.Type, v.Number)
	}
	err = sch.Validate(withDefaults(plain(payload), v.Schema))
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("contract: validate %s v%d: %w", v.Type, v.Number, err)
	}
	me := &MismatchError{Type: v.Type, Version: v.Number}
	leaves(verr, func(e *jsonschema.ValidationError) {
		me.Problems = append(me.Problems, "/"+strings.Join(e.InstanceLocation, "/")+": "+e.ErrorKind.LocalizedString(printer))
	})
	// The validator's order follows map iteration; sorted, the same
	// payload always gives the same error, and the first ones are kept.
	slices.Sort(me.Problems)
	me.Problems = slices.Compact(me.Problems)
	if len(me.Problems) > maxMismatches {
		me.Problems = me.Problems[:maxMismatches]
	}
	return me
}

// leaves calls fn for each error with no causes under e.
func leaves(e *jsonschema.ValidationError, fn func(*jsonschema.ValidationError)) {
	if len(e.Causes) == 0 {
		fn(e)
		return
	}
	for _, c := range e.Causes {
		leaves(c, fn)
	}
}

// withDefaults sets the defaults of the properties v lacks, in the objects
// of v that s describes. v is plain's copy, so it may be changed.
func withDefaults(v any, s *Schema) any {
	if s == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		for name, ps := range s.Properties {
			el, ok := x[name]
			switch {
			case !ok && ps.HasDefault:
				x[name] = ps.Default
			case ok:
				x[name] = withDefaults(el, ps)
			}
		}
		if s.AdditionalProperties != nil {
			for name, el := range x {
				if _, listed := s.Properties[name]; !listed {
					x[name] = withDefaults(el, s.AdditionalProperties)
				}
			}
		}
	case []any:
		for i, el := range x {
			x[i] = withDefaults(el, s.Items)
		}
	}
	return v
}

// plain converts a decoded payload into the values the validator reads.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[k] = plain(el)
		}
		return m
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[fmt.Sprint(k)] = plain(el)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, el := range x {
			l[i] = plain(el)
		}
		return l
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case float32:
		return float64(x)
	}
	return v
}
