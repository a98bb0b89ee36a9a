package contract_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmq/warren/contract"
)

// schemaSet is a contracts file with one type, t, whose version 1 has
// the schema written in flow style.
func schemaSet(t *testing.T, schema string) *contract.Set {
	t.Helper()
	return parse(t, "types:\n  t:\n    versions:\n      1:\n        schema: "+schema+"\n")
}

// findings lists a report's findings as "path rule breaks", the path "/"
// for the payload itself.
func findings(r *contract.Report) []string {
	var out []string
	for _, v := range r.Versions {
		for _, f := range v.Findings {
			path := f.Path
			if path == "" {
				path = "/"
			}
			out = append(out, fmt.Sprintf("%s %s %s", path, f.Rule, f.Breaks))
		}
	}
	return out
}

func TestCompareRules(t *testing.T) {
	const (
		obj = "{type: object, properties: {a: {type: string}}}"
	)
	tests := []struct {
		name     string
		old, new string
		want     []string // "path rule breaks"
	}{
		{"same", obj, obj, nil},
		{"optional added", obj, "{type: object, properties: {a: {type: string}, b: {type: integer}}}",
			[]string{"/b property-added none"}},
		{"optional added with default", obj, "{type: object, properties: {a: {type: string}, b: {type: integer, default: 3}}}",
			[]string{"/b property-added none"}},
		{"optional added to closed", "{type: object, additionalProperties: false, properties: {a: {type: string}}}",
			"{type: object, additionalProperties: false, properties: {a: {type: string}, b: {type: integer}}}",
			[]string{"/b property-added-closed forward"}},
		{"required added", obj, "{type: object, required: [b], properties: {a: {type: string}, b: {type: integer}}}",
			[]string{"/b required-added backward"}},
		{"required added with default", obj, "{type: object, required: [b], properties: {a: {type: string}, b: {type: integer, default: 1}}}",
			[]string{"/b required-added none"}},
		{"required added to closed", "{type: object, additionalProperties: false, properties: {a: {type: string}}}",
			"{type: object, additionalProperties: false, required: [b], properties: {a: {type: string}, b: {type: integer}}}",
			[]string{"/b property-added-closed forward", "/b required-added backward"}},
		{"optional removed", "{type: object, properties: {a: {type: string}, b: {type: integer}}}", obj,
			[]string{"/b property-removed none"}},
		{"required removed", "{type: object, required: [b], properties: {a: {type: string}, b: {type: integer}}}", obj,
			[]string{"/b required-removed forward"}},
		{"required with default removed", "{type: object, required: [b], properties: {a: {type: string}, b: {type: integer, default: 0}}}", obj,
			[]string{"/b required-removed none"}},
		{"optional removed, new closed", "{type: object, properties: {a: {type: string}, b: {type: integer}}}",
			"{type: object, additionalProperties: false, properties: {a: {type: string}}}",
			[]string{"/b property-removed-closed backward", "/ additional-properties-closed backward"}},
		{"required removed, new closed", "{type: object, additionalProperties: false, required: [b], properties: {a: {type: string}, b: {type: integer}}}",
			"{type: object, additionalProperties: false, properties: {a: {type: string}}}",
			[]string{"/b property-removed-closed backward", "/b required-removed forward"}},
		{"optional to required", obj, "{type: object, required: [a], properties: {a: {type: string}}}",
			[]string{"/a optional-to-required backward"}},
		{"optional to required with default", obj, "{type: object, required: [a], properties: {a: {type: string, default: x}}}",
			[]string{"/a default-changed none", "/a optional-to-required none"}},
		{"required to optional", "{type: object, required: [a], properties: {a: {type: string}}}", obj,
			[]string{"/a required-to-optional forward"}},
		{"closed", obj, "{type: object, additionalProperties: false, properties: {a: {type: string}}}",
			[]string{"/ additional-properties-closed backward"}},
		{"opened", "{type: object, additionalProperties: false, properties: {a: {type: string}}}", obj,
			[]string{"/ additional-properties-opened forward"}},
		{"additional schema narrowed", obj, "{type: object, additionalProperties: {type: string}, properties: {a: {type: string}}}",
			[]string{"/* type-narrowed backward"}},
		{"additional schema compared", "{type: object, additionalProperties: {type: string, maxLength: 3}}",
			"{type: object, additionalProperties: {type: string, maxLength: 5}}",
			[]string{"/* constraint-loosened forward"}},
		{"property listed from additional", "{type: object, additionalProperties: {type: integer}}",
			"{type: object, additionalProperties: {type: integer}, properties: {n: {type: integer, minimum: 0}}}",
			[]string{"/n constraint-tightened backward"}},
		{"type changed", "{type: string}", "{type: boolean}", []string{"/ type-changed full"}},
		{"integer to number", "{type: integer}", "{type: number}", []string{"/ type-widened forward"}},
		{"number to integer", "{type: number}", "{type: integer}", []string{"/ type-narrowed backward"}},
		{"null added", "{type: string}", "{type: [string, \"null\"]}", []string{"/ type-widened forward"}},
		{"null removed", "{type: [string, \"null\"]}", "{type: string}", []string{"/ type-narrowed backward"}},
		{"type added where none", "{}", "{type: string}", []string{"/ type-narrowed backward"}},
		{"type dropped", "{type: string}", "{}", []string{"/ type-widened forward"}},
		{"enum value added", "{type: string, enum: [a, b]}", "{type: string, enum: [a, b, c]}",
			[]string{"/ enum-value-added forward"}},
		{"enum value removed", "{type: string, enum: [a, b]}", "{type: string, enum: [a]}",
			[]string{"/ enum-value-removed backward"}},
		{"enum values swapped", "{enum: [1, 2]}", "{enum: [2, 3]}",
			[]string{"/ enum-value-added forward", "/ enum-value-removed backward"}},
		{"enum same numbers", "{enum: [1, 2.5]}", "{enum: [1.0, 2.5]}", nil},
		{"enum added", "{type: string}", "{type: string, enum: [a]}", []string{"/ enum-added backward"}},
		{"enum removed", "{type: string, enum: [a]}", "{type: string}", []string{"/ enum-removed forward"}},
		{"const added", "{type: string}", "{type: string, const: a}", []string{"/ const-added backward"}},
		{"const removed", "{type: string, const: a}", "{type: string}", []string{"/ const-removed forward"}},
		{"const changed", "{type: string, const: a}", "{type: string, const: b}", []string{"/ const-changed full"}},
		{"minimum added", "{type: integer}", "{type: integer, minimum: 1}", []string{"/ constraint-tightened backward"}},
		{"minimum raised", "{type: integer, minimum: 1}", "{type: integer, minimum: 2}", []string{"/ constraint-tightened backward"}},
		{"minimum made exclusive", "{type: number, minimum: 0}", "{type: number, exclusiveMinimum: 0}", []string{"/ constraint-tightened backward"}},
		{"minimum lowered", "{type: integer, minimum: 2}", "{type: integer, minimum: 1}", []string{"/ constraint-loosened forward"}},
		{"minimum removed", "{type: integer, minimum: 2}", "{type: integer}", []string{"/ constraint-loosened forward"}},
		{"maximum lowered", "{type: integer, maximum: 9}", "{type: integer, maximum: 8}", []string{"/ constraint-tightened backward"}},
		{"maximum raised", "{type: integer, exclusiveMaximum: 9}", "{type: integer, maximum: 9}", []string{"/ constraint-loosened forward"}},
		{"maxLength lowered", "{type: string, maxLength: 9}", "{type: string, maxLength: 8}", []string{"/ constraint-tightened backward"}},
		{"minLength removed", "{type: string, minLength: 1}", "{type: string}", []string{"/ constraint-loosened forward"}},
		{"minItems added", "{type: array}", "{type: array, minItems: 1}", []string{"/ constraint-tightened backward"}},
		{"maxItems raised", "{type: array, maxItems: 3}", "{type: array, maxItems: 4}", []string{"/ constraint-loosened forward"}},
		{"pattern added", "{type: string}", "{type: string, pattern: '^a'}", []string{"/ pattern-added backward"}},
		{"pattern changed", "{type: string, pattern: '^a'}", "{type: string, pattern: '^b'}", []string{"/ pattern-changed full"}},
		{"pattern removed", "{type: string, pattern: '^a'}", "{type: string}", []string{"/ pattern-removed forward"}},
		{"format added", "{type: string}", "{type: string, format: date-time}", []string{"/ format-added backward"}},
		{"format removed", "{type: string, format: email}", "{type: string}", []string{"/ format-removed forward"}},
		{"informational", "{type: object, description: a, properties: {a: {type: string, default: x}}}",
			"{type: object, description: b, properties: {a: {type: string, default: y, deprecated: true, description: c}}}",
			[]string{"/a property-deprecated none", "/a default-changed none"}},
		{"no common type stops there", "{type: object, properties: {a: {type: string}}}", "{type: string, minLength: 1}",
			[]string{"/ type-changed full"}},
		{"nested", "{type: object, properties: {stops: {type: array, items: {type: object, properties: {at: {type: string}}}}}}",
			"{type: object, properties: {stops: {type: array, items: {type: object, required: [at], properties: {at: {type: string, format: date-time}}}}}}",
			[]string{"/stops[]/at format-added backward", "/stops[]/at optional-to-required backward"}},
		{"items added", "{type: array}", "{type: array, items: {type: integer}}", []string{"/[] type-narrowed backward"}},
		{"items removed", "{type: array, items: {type: integer}}", "{type: array}", []string{"/[] type-widened forward"}},
		{"escaped name", "{type: object, properties: {a/b: {type: string}}}", "{type: object, properties: {a/b: {type: integer}}}",
			[]string{"/a~1b type-changed full"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A payload is an object: other schemas are tried as the
			// schema of its property x.
			if !strings.HasPrefix(tt.old, "{type: object") || !strings.HasPrefix(tt.new, "{type: object") {
				tt.old = "{type: object, properties: {x: " + tt.old + "}}"
				tt.new = "{type: object, properties: {x: " + tt.new + "}}"
				want := make([]string, len(tt.want))
				for i, w := range tt.want {
					path, rest, _ := strings.Cut(w, " ")
					switch {
					case path == "/":
						path = "/x"
					case strings.HasPrefix(path, "/[]"):
						path = "/x" + path[1:]
					default:
						path = "/x" + path
					}
					want[i] = path + " " + rest
				}
				tt.want = want
			}
			r := contract.Compare(schemaSet(t, tt.old), schemaSet(t, tt.new))
			got := findings(r)
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings\n got %q\nwant %q", got, tt.want)
			}
			var want contract.Direction
			for _, w := range tt.want {
				d, _ := contract.ParseDirection(w[strings.LastIndexByte(w, ' ')+1:])
				want |= d
			}
			if r.Breaks() != want {
				t.Errorf("Breaks() = %v, want %v", r.Breaks(), want)
			}
			change := contract.Unchanged
			if len(tt.want) > 0 {
				change = contract.Changed
			}
			if len(r.Versions) != 1 || r.Versions[0].Change != change {
				t.Errorf("versions %+v, want one %s", r.Versions, change)
			}
			// Swapping old and new swaps the directions broken, except
			// where a rule depends on a default one side has.
			if !strings.Contains(tt.name, "default") {
				back := contract.Compare(schemaSet(t, tt.new), schemaSet(t, tt.old)).Breaks()
				if swapped := want&contract.Backward<<1 | want&contract.Forward>>1; back != swapped {
					t.Errorf("reversed: Breaks() = %v, want %v", back, swapped)
				}
			}
		})
	}
}

func TestCompareTypesAndVersions(t *testing.T) {
	const v = "{schema: {type: object}}"
	old := parse(t, `
types:
  gone: {versions: {1: `+v+`}}
  kept: {versions: {1: `+v+`, 2: `+v+`}}
`)
	next := parse(t, `
types:
  kept: {versions: {1: {schema: {type: object}, deprecated: true, description: Use 3.}, 3: `+v+`}}
  fresh: {versions: {1: `+v+`}}
`)
	r := contract.Compare(old, next)
	var got []string
	for _, vr := range r.Versions {
		line := fmt.Sprintf("%s v%d %s %s", vr.Type, vr.Version, vr.Change, vr.Breaks())
		for _, f := range vr.Findings {
			line += " " + f.Rule
		}
		got = append(got, line)
	}
	want := []string{
		"fresh v1 added none type-added",
		"gone v1 removed backward type-removed",
		"kept v1 changed none version-deprecated description-changed",
		"kept v2 removed backward version-removed",
		"kept v3 added none version-added",
	}
	if !slices.Equal(got, want) {
		t.Errorf("versions\n got %q\nwant %q", got, want)
	}
	if r.Compatible(contract.Backward) || !r.Compatible(contract.Forward) {
		t.Errorf("Compatible: backward %v, forward %v", r.Compatible(contract.Backward), r.Compatible(contract.Forward))
	}
	if b := r.Breaking(contract.Full); len(b) != 2 || b[0].String() != `gone v1 /: type-removed (breaks backward): job type gone is gone from the new contracts; consumers using them refuse the messages of it still in queues (mark it deprecated instead, and remove it once none are left)` {
		t.Errorf("Breaking(Full) = %v", b)
	}
	if r := contract.Compare(next, next); !r.Compatible(contract.Full) || len(r.Breaking(contract.Full)) != 0 {
		t.Errorf("a set against itself: %v", findings(r))
	}
}

func TestParseDirection(t *testing.T) {
	for _, d := range []contract.Direction{contract.Backward, contract.Forward, contract.Full} {
		if got, err := contract.ParseDirection(d.String()); err != nil || got != d {
			t.Errorf("ParseDirection(%q) = %v, %v", d, got, err)
		}
	}
	if _, err := contract.ParseDirection("both"); err == nil || !strings.Contains(err.Error(), "use backward, forward or full") {
		t.Errorf("ParseDirection(both) = %v", err)
	}
}

func TestCompareTaxiWithItself(t *testing.T) {
	set, err := contract.Load("../examples/taxi/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := contract.Compare(set, set)
	if !r.Compatible(contract.Full) || len(r.Versions) == 0 {
		t.Errorf("taxi against itself: %v", findings(r))
	}
	for _, v := range r.Versions {
		if v.Change != contract.Unchanged {
			t.Errorf("%s v%d: %s", v.Type, v.Version, v.Change)
		}
	}
}

func ExampleCompare() {
	old, err := contract.Parse("old.yaml", []byte(`
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider]
          properties:
            rider: {type: string}
            seats: {type: integer, maximum: 8}
`))
	if err != nil {
		panic(err)
	}
	next, err := contract.Parse("new.yaml", []byte(`
types:
  trip.book:
    versions:
      1:
        schema:
          type: object
          required: [rider, class]
          properties:
            rider: {type: string}
            seats: {type: number, maximum: 8}
            class: {type: string, enum: [economy, comfort], default: economy}
`))
	if err != nil {
		panic(err)
	}
	r := contract.Compare(old, next)
	for _, f := range r.Versions[0].Findings {
		fmt.Printf("%s %s: breaks %s\n", f.Path, f.Rule, f.Breaks)
	}
	fmt.Println("backward compatible:", r.Compatible(contract.Backward))
	fmt.Println("forward compatible:", r.Compatible(contract.Forward))
	// Output:
	// /seats type-widened: breaks forward
	// /class required-added: breaks none
	// backward compatible: true
	// forward compatible: false
}
