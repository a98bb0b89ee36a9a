package gogen_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/gogen"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldens are the contracts the golden tests generate from: path (from
// this directory), the name the header shows, and the golden file.
var goldens = []struct {
	path, source, pkg, golden string
}{
	{"../../examples/taxi/contracts/taxi.yaml", "contracts/taxi.yaml", "taxi", "testdata/taxi_contracts.go.golden"},
	{"../../examples/taxi/topology.yaml", "topology.yaml", "taxi", "testdata/taxi_topology.go.golden"},
	{"testdata/rich.yaml", "rich.yaml", "rich", "testdata/rich.go.golden"},
}

func generate(t *testing.T, path, source, pkg string) []byte {
	t.Helper()
	set, err := contract.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	src, err := gogen.Generate(set, gogen.Options{Package: pkg, Source: source, Output: pkg + "_contracts.go"})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestGolden compares the code generated for each contracts file with its
// golden file. Run with -update to rewrite them, and review the diff.
func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(filepath.Base(g.golden), func(t *testing.T) {
			got := string(generate(t, g.path, g.source, g.pkg))
			if *update {
				if err := os.WriteFile(g.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(g.golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s differs (-want +got):\n%s", g.golden, diff)
			}
		})
	}
}

// TestDeterministic generates the same file many times: the contracts'
// maps must not leak their random order into the output.
func TestDeterministic(t *testing.T) {
	first := generate(t, "testdata/rich.yaml", "rich.yaml", "rich")
	for i := 0; i < 20; i++ {
		if again := generate(t, "testdata/rich.yaml", "rich.yaml", "rich"); string(again) != string(first) {
			t.Fatalf("run %d differs from the first:\n%s", i+2, cmp.Diff(string(first), string(again)))
		}
	}
}

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"trip.book":      "TripBook",
		"trip-id":        "TripID",
		"driver_eta":     "DriverETA",
		"promo_url":      "PromoURL",
		"tripId":         "TripId",
		"ID":             "ID",
		"a..b--c":        "ABC",
		"2fa":            "X2fa",
		"über.straße":    "ÜberStraße",
		"名前":             "X名前",
		"v2":             "V2",
		"http.request":   "HTTPRequest",
		"...":            "",
		"first-class":    "FirstClass",
		"billing.charge": "BillingCharge",
	} {
		if got := gogen.GoName(in); got != want {
			t.Errorf("GoName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGenerateProblems checks that contracts whose names do not make Go
// names, and bad options, are refused with an error that names them.
func TestGenerateProblems(t *testing.T) {
	tests := []struct {
		name, src, pkg string
		want           []string
		names          bool // the error wraps ErrNames
	}{
		{"types clash", `
types:
  trip.book: {versions: {1: {schema: {type: object}}, 2: {schema: {type: object}}}}
  trip_book: {versions: {1: {schema: {type: object}}}}`, "p",
			[]string{`job types "trip.book" and "trip_book" clash: both make the Go name TripBookType`, "rename the job types or properties"}, true},
		{"properties clash", `
types:
  a: {versions: {1: {schema: {type: object, properties: {trip-id: {type: string}, trip_id: {type: string}}}}}}`, "p",
			[]string{`properties "trip-id" and "trip_id" of version 1 of "a" both make the field AV1.TripID`}, true},
		{"nested struct clashes with enum", `
types:
  a:
    versions:
      1:
        schema:
          type: object
          properties:
            b_c: {type: string, enum: [x]}
            b: {type: object, properties: {c: {type: object, properties: {d: {type: string}}}}}`, "p",
			[]string{"the enum type of AV1.BC and the struct of AV1B.C both make the Go name AV1BC"}, true},
		{"no letters", `
types:
  a: {versions: {1: {schema: {type: object, properties: {"--": {type: string}}}}}}`, "p",
			[]string{`property "--" of version 1 of "a" (AV1) has no letters or digits`}, true},
		{"tag", `
types:
  a: {versions: {1: {schema: {type: object, properties: {"b,c": {type: string}}}}}}`, "p",
			[]string{`property "b,c" of version 1 of "a" (AV1) cannot be a struct tag's key`}, true},
		{"enum values clash", `
types:
  a: {versions: {1: {schema: {type: object, properties: {b: {type: string, enum: [x-y, x_y]}}}}}}`, "p",
			[]string{`the value "x-y" of AV1.B and the value "x_y" of AV1.B both make the Go name AV1BXY`}, true},
		{"package", `
types:
  a: {versions: {1: {schema: {type: object}}}}`, "my-pkg",
			[]string{`package name "my-pkg" is not a Go identifier`}, false},
		{"empty", "types: {}", "p", []string{"declares no job types"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := contract.Parse("contracts.yaml", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			src, err := gogen.Generate(set, gogen.Options{Package: tc.pkg, Source: "contracts.yaml"})
			if err == nil {
				t.Fatalf("no error; generated:\n%s", src)
			}
			if errors.Is(err, gogen.ErrNames) != tc.names {
				t.Errorf("errors.Is(err, ErrNames) = %v, want %v", !tc.names, tc.names)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant %q in it", err, w)
				}
			}
		})
	}
}
