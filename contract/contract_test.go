package contract_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/contract"
)

func TestLoadTaxi(t *testing.T) {
	set, err := contract.Load("../examples/taxi/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Warnings) > 0 {
		t.Errorf("warnings: %v", set.Warnings)
	}
	if set.Topology == nil {
		t.Error("no topology")
	}
	if got := strings.Join(set.Names(), " "); !strings.Contains(got, "billing.charge") || !strings.Contains(got, "trip.booked") {
		t.Errorf("types %s", got)
	}
	if len(set.Files) != 2 || !strings.HasSuffix(set.Files[1], filepath.Join("contracts", "taxi.yaml")) {
		t.Errorf("files %v", set.Files)
	}
	v, err := set.Lookup("billing.charge", 0)
	if err != nil || v.Number != 1 || !v.Schema.IsRequired("amount") || v.Schema.Properties["amount"].Type[0] != contract.TypeInteger {
		t.Errorf("Lookup(billing.charge, 0) = %+v, %v", v, err)
	}
	if got := v.Schema.PropertyOrder; strings.Join(got, ",") != "trip,ride,rider,amount" {
		t.Errorf("property order %v", got)
	}
	// An alias shares the schema: driver.release is written as *driver-order.
	if r, err := set.Lookup("driver.release", 1); err != nil || !r.Schema.IsRequired("ride") {
		t.Errorf("driver.release: %+v, %v", r, err)
	}
}

func TestLookupUnknown(t *testing.T) {
	set := parse(t, contractsFile)
	for _, tc := range []struct {
		jobType string
		version int
		want    string
	}{
		{"nope", 1, `no contract for job type "nope"`},
		{"trip.book", 4, `no contract for version 4 of "trip.book", which has versions [1 2 3]`},
	} {
		_, err := set.Lookup(tc.jobType, tc.version)
		if !errors.Is(err, contract.ErrNoContract) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Lookup(%s, %d) = %v; want ErrNoContract, %q", tc.jobType, tc.version, err, tc.want)
		}
		if err := set.Validate(tc.jobType, tc.version, map[string]any{}); !errors.Is(err, contract.ErrNoContract) {
			t.Errorf("Validate(%s, %d) = %v; want ErrNoContract", tc.jobType, tc.version, err)
		}
	}
}

const contractsFile = `
version: 1
types:
  trip.book:
    description: Book a trip.
    versions:
      1:
        deprecated: true
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string, minLength: 1}
            seats: {type: integer, minimum: 1, maximum: 8, default: 1}
      2:
        description: The rider's class of car.
        schema:
          type: object
          additionalProperties: false
          required: [rider, class]
          x-owner: trips
          properties:
            rider: {type: string, pattern: "^[a-z]+$"}
            class: {type: string, enum: [economy, comfort]}
            stops:
              type: array
              maxItems: 3
              items:
                type: object
                required: [at]
                properties:
                  at: {type: string, format: date-time}
                  note: {type: [string, "null"]}
            photo: {type: string}
            fare: {type: number, exclusiveMinimum: 0}
      3:
        schema:
          type: object
          required: [rider, class]
          properties:
            rider: {type: string}
            class: {type: string, enum: [economy, comfort], default: economy}
            legs:
              type: array
              items:
                type: object
                required: [kind]
                properties:
                  kind: {enum: [car, walk], default: car}
`

func parse(t *testing.T, src string) *contract.Set {
	t.Helper()
	set, err := contract.Parse("contracts.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestParseModel(t *testing.T) {
	set := parse(t, contractsFile)
	typ := set.Types["trip.book"]
	if typ.Description != "Book a trip." || typ.Latest().Number != 3 || !typ.Versions[1].Deprecated || typ.Versions[2].Deprecated {
		t.Errorf("type %+v", typ)
	}
	v1 := typ.Versions[1].Schema
	seats := v1.Properties["seats"]
	if !seats.HasDefault || seats.Default != int64(1) || *seats.Minimum != 1 || *seats.Maximum != 8 {
		t.Errorf("seats %+v", seats)
	}
	v2 := typ.Versions[2].Schema
	if !v2.Closed || v2.Properties["class"].Enum[1] != "comfort" || v2.Properties["stops"].Items.Properties["note"].Type[1] != contract.TypeNull {
		t.Errorf("v2 %+v", v2)
	}
	if v2.JSON()["x-owner"] != "trips" || v2.JSON()["additionalProperties"] != false {
		t.Errorf("JSON() %v", v2.JSON())
	}
	if v2.Pos.Line == 0 || typ.Pos.Line != 4 {
		t.Errorf("positions: type %v, schema %v", typ.Pos, v2.Pos)
	}
}

func TestValidate(t *testing.T) {
	set := parse(t, contractsFile)
	ok := []struct {
		version int
		payload any
	}{
		{0, map[string]any{"rider": "ada"}},
		{1, map[string]any{"rider": "ada", "seats": int8(2), "extra": true}},
		{2, map[string]any{"rider": "ada", "class": "comfort", "photo": []byte{1, 2},
			"stops": []any{map[string]any{"at": time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC), "note": nil}},
			"fare":  float32(12.5)}},
		{2, map[string]any{"rider": "ada", "class": "economy", "stops": []any{map[string]any{"at": "2026-12-06T10:00:00Z"}}}},
		// A required property with a default may be absent: the default
		// is checked in its place.
		{3, map[string]any{"rider": "ada"}},
		{3, map[string]any{"rider": "ada", "legs": []any{map[string]any{}}}},
	}
	for _, tc := range ok {
		if err := set.Validate("trip.book", tc.version, tc.payload); err != nil {
			t.Errorf("v%d %v: %v", tc.version, tc.payload, err)
		}
	}
	bad := []struct {
		version int
		payload any
		want    []string
	}{
		{1, map[string]any{"seats": uint64(9)}, []string{"/: missing property 'rider'", "/seats: maximum: got 9, want 8"}},
		{1, map[string]any{"rider": ""}, []string{"/rider: minLength"}},
		{1, "a string", []string{"/: got string, want object"}},
		{1, nil, []string{"/: got null, want object"}},
		{2, map[string]any{"rider": "Ada", "class": "first", "tip": 1}, []string{"/rider: 'Ada' does not match pattern", "/class: value must be one of", "additional properties 'tip' not allowed"}},
		{2, map[string]any{"rider": "ada", "class": "economy", "stops": []any{map[string]any{"at": "tomorrow"}}}, []string{"/stops/0/at: 'tomorrow' is not valid date-time"}},
		{2, map[string]any{"rider": "ada", "class": "economy", "fare": 0}, []string{"/fare: exclusiveMinimum"}},
		{3, map[string]any{"rider": "ada", "class": "first", "legs": []any{map[string]any{"kind": "bus"}}}, []string{"/class: value must be one of", "/legs/0/kind: value must be one of"}},
	}
	for _, tc := range bad {
		err := set.Validate("trip.book", tc.version, tc.payload)
		var me *contract.MismatchError
		if !errors.As(err, &me) || !errors.Is(err, contract.ErrMismatch) || me.Version != tc.version || me.Type != "trip.book" {
			t.Errorf("v%d %v: %v; want a MismatchError", tc.version, tc.payload, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("v%d %v:\n%v\nwant %q in it", tc.version, tc.payload, err, w)
			}
		}
	}
}

// TestParseProblems feeds files with mistakes: each must be refused at the
// right place with a message saying what to do.
func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string // substrings of the error
	}{
		{"empty", "", []string{"contracts.yaml:1:1: the file is empty"}},
		{"not yaml", "types: [", []string{"YAML:"}},
		{"neither", "hello: 1", []string{"neither a topology file nor a contracts file"}},
		{"types not a map", "types: [a]", []string{"types must be a mapping, not a list"}},
		{"no versions", "types:\n  a: {}", []string{`2:3: job type "a" has no versions`, "hint: add versions"}},
		{"version zero", "types:\n  a:\n    versions:\n      0: {schema: {type: object}}", []string{`version the number 0 of "a" is not a version number`}},
		{"version string", "types:\n  a:\n    versions:\n      v1: {schema: {type: object}}", []string{`version "v1" of "a" is not a version number`}},
		{"no schema", "types:\n  a:\n    versions:\n      1: {}", []string{`version 1 of "a" has no schema`}},
		{"not object", "types:\n  a:\n    versions:\n      1: {schema: {type: string}}", []string{"must have type: object"}},
		{"unknown key", "types:\n  a:\n    descripton: x\n    versions: {1: {schema: {type: object}}}", []string{`3:5: unknown key "descripton" in job type "a"`, "description, versions"}},
		{"unknown keyword", "types:\n  a:\n    versions:\n      1: {schema: {type: object, propertys: {}}}", []string{`unknown schema keyword "propertys" in a v1`, "docs/contracts.md#schemas"}},
		{"ref", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {$ref: '#/x'}}}}", []string{`the schema keyword "$ref" (in a v1.b) is not supported`}},
		{"oneOf", "types:\n  a:\n    versions:\n      1: {schema: {oneOf: []}}", []string{`"oneOf"`}},
		{"bad type", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {type: int}}}}", []string{`unknown type "int" in the schema of a v1.b`}},
		{"required missing", "types:\n  a:\n    versions:\n      1: {schema: {type: object, required: [b], properties: {c: {}}}}", []string{`required property "b" of a v1 is not among its properties`}},
		{"bad pattern", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {type: string, pattern: '('}}}}", []string{"pattern in the schema of a v1.b: error parsing regexp"}},
		{"min above max", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {type: integer, minimum: 5, maximum: 1}}}}", []string{"minimum 5 above maximum 1"}},
		{"negative length", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {type: string, minLength: -1}}}}", []string{"minLength in the schema of a v1.b must be a whole number from 0"}},
		{"properties on string", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {type: string, properties: {}}}}}", []string{"has properties but its type is [string]"}},
		{"empty enum", "types:\n  a:\n    versions:\n      1: {schema: {type: object, properties: {b: {enum: []}}}}", []string{"enum in the schema of a v1.b must be a non-empty list"}},
		{"duplicate version", "types:\n  a:\n    versions:\n      1: {schema: {type: object}}\n      1: {schema: {type: object}}", []string{`version 1 of "a" is declared twice`}},
		{"duplicate type", "types:\n  a: {versions: {1: {schema: {type: object}}}}\n  a: {versions: {1: {schema: {type: object}}}}", []string{`job type "a" is declared twice; the first is at contracts.yaml:2:3`}},
		{"bad version key", "version: 2\ntypes:\n  a: {versions: {1: {schema: {type: object}}}}", []string{"unknown contracts file version the number 2"}},
		{"deprecated not bool", "types:\n  a: {versions: {1: {deprecated: yes please, schema: {type: object}}}}", []string{"deprecated must be true or false"}},
		{"tag", "types:\n  a: {versions: {1: {schema: {type: object, properties: {b: {default: !!binary aGk=}}}}}}", []string{"has no JSON equivalent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := contract.Parse("contracts.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			var ps contract.Problems
			if !errors.As(err, &ps) || len(ps.Errors()) == 0 {
				t.Fatalf("%T %v; want Problems", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant %q in it", err, w)
				}
			}
		})
	}
}

func write(t *testing.T, dir, name, src string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const topologyWith = `
version: 1
exchanges:
  trips: {type: direct}
queues:
  trips: {}
bindings:
  - {exchange: trips, queue: trips, routing_key: trip.book}
routes:
  trip.book: {exchange: trips}
contracts:
  include: [%s]
  types:
    trip.cancel:
      versions:
        1: {schema: {type: object}}
`

func TestLoadTopologyIncludes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "contracts/trips.yaml", contractsFile)
	top := write(t, dir, "topology.yaml", strings.Replace(topologyWith, "%s", "contracts/*.yaml", 1))
	set, err := contract.Load(top)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(set.Names(), ",") != "trip.book,trip.cancel" {
		t.Errorf("types %v", set.Names())
	}
	// trip.cancel has no route: a warning, at its key.
	if len(set.Warnings) != 1 || !strings.Contains(set.Warnings[0].String(), `topology.yaml:14:5: warning: contract for job type "trip.cancel", which no route sends anywhere`) {
		t.Errorf("warnings %v", set.Warnings)
	}
	// Problems in an included file are reported in it.
	write(t, dir, "contracts/bad.yaml", "types:\n  trip.rate: {}\n")
	_, err = contract.Load(top)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "contracts", "bad.yaml")+`:2:3: job type "trip.rate" has no versions`) {
		t.Errorf("bad include: %v", err)
	}
	for _, tc := range []struct{ include, want string }{
		{"nothing/*.yaml", `include "nothing/*.yaml" matches no file`},
		{"topology.yaml", "the file includes itself"},
		{"[", "syntax error in pattern"},
	} {
		top := write(t, dir, "t2.yaml", strings.Replace(topologyWith, "%s", `"`+tc.include+`"`, 1))
		if tc.include == "topology.yaml" {
			top = write(t, dir, "t2.yaml", strings.Replace(topologyWith, "%s", "t2.yaml", 1))
		}
		if _, err := contract.Load(top); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("include %s: %v; want %q", tc.include, err, tc.want)
		}
	}
	// A topology file's own mistakes come as topology.Load reports them.
	top = write(t, dir, "t3.yaml", "queues:\n  q: {type: bogus}\ncontracts: {}\n")
	if _, err := contract.Load(top); err == nil || !strings.Contains(err.Error(), "t3.yaml:2:") {
		t.Errorf("broken topology: %v", err)
	}
	// The topology refuses a contracts section of the wrong shape.
	top = write(t, dir, "t4.yaml", "queues:\n  q: {}\ncontracts:\n  typez: {}\n")
	if _, err := contract.Load(top); err == nil || !strings.Contains(err.Error(), `unknown key "typez" in contracts`) {
		t.Errorf("typo in contracts: %v", err)
	}
}

func FuzzParseContracts(f *testing.F) {
	f.Add([]byte(contractsFile))
	f.Add([]byte("types:\n  a: {versions: {1: {schema: {type: object, properties: {b: &x {type: array, items: *x}}}}}}"))
	f.Add([]byte("types: {a: {versions: {1: {schema: {type: object, properties: {b: {enum: [1, 2.5, null, {c: [d]}]}}}}}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := contract.Parse("fuzz.yaml", data)
		if err != nil {
			var ps contract.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("%T: %v", err, err)
			}
			return
		}
		for _, name := range set.Names() {
			for _, n := range set.Types[name].Numbers() {
				_ = set.Validate(name, n, map[string]any{"a": int64(1), "b": []any{"x"}})
			}
		}
	})
}

// TestAliasBomb: aliases that multiply each other are refused, quickly.
func TestAliasBomb(t *testing.T) {
	src := "types:\n  a:\n    versions:\n      1:\n        schema:\n          type: object\n          default: &l0 [x, x]\n"
	for i := 1; i <= 30; i++ {
		src += fmt.Sprintf("          x-%d: &l%d [*l%d, *l%d]\n", i, i, i-1, i-1)
	}
	_, err := contract.Parse("bomb.yaml", []byte(src))
	if err == nil || !strings.Contains(err.Error(), "schema nodes, aliases expanded") {
		t.Errorf("%.300v", err)
	}
}
