package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// snakeCase is the one spelling of every key warren's own JSON documents
// use.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// userData are the keys whose values are the user's (a job's payload, a
// reply, AMQP headers and arguments) or RabbitMQ's (a policy's
// definition, spelt as rabbitmqctl takes it): their keys are not
// warren's, so the style check does not descend into them.
var userData = []string{"payload", "result", "headers", "arguments", "args", "definition"}

// foreignFormats are command lines whose --json output is another
// program's format, checked by that program: RabbitMQ's definitions, an
// AsyncAPI document.
func foreignFormat(args []string) bool {
	return slices.Contains(args, "export") && slices.Contains(args, "topology") && !slices.Contains(args, "--out") ||
		slices.Contains(args, "asyncapi") && !slices.Contains(args, "-o")
}

// checkJSONStyle fails t unless out is one or more JSON documents each an
// object with "version": 1 and snake_case keys throughout (user data
// aside). The in-process warren helper calls it for every --json run, so
// every command a test runs with --json is held to the one style.
func checkJSONStyle(t *testing.T, args []string, out string) {
	t.Helper()
	if strings.TrimSpace(out) == "" || foreignFormat(args) {
		return
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	for n := 0; ; n++ {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			if n == 0 {
				t.Errorf("warren %s: --json printed no document", strings.Join(args, " "))
			}
			return
		}
		if err != nil {
			t.Errorf("warren %s: --json output is not JSON (%v):\n%s", strings.Join(args, " "), err, out)
			return
		}
		obj, ok := doc.(map[string]any)
		if !ok {
			t.Errorf("warren %s: --json document %d is %T, want an object with a version", strings.Join(args, " "), n, doc)
			continue
		}
		if v, _ := obj["version"].(json.Number); v != "1" {
			t.Errorf("warren %s: --json document %d has version %v, want 1", strings.Join(args, " "), n, obj["version"])
		}
		for _, bad := range badKeys(obj, "") {
			t.Errorf("warren %s: --json key %s is not snake_case", strings.Join(args, " "), bad)
		}
	}
}

// badKeys returns the paths of the keys in v that are not snake_case.
func badKeys(v any, path string) []string {
	var bad []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := path + "." + k
			if !snakeCase.MatchString(k) {
				bad = append(bad, p)
			}
			if slices.Contains(userData, k) {
				continue
			}
			bad = append(bad, badKeys(e, p)...)
		}
	case []any:
		for _, e := range x {
			bad = append(bad, badKeys(e, path+"[]")...)
		}
	}
	return bad
}

func TestCheckJSONStyle(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want []string
	}{
		{`{"version":1,"queue":"q","jobs":[{"first_failed_at":"x","payload":{"CamelOK":1}}]}`, nil},
		{`{"version":1,"origin":{"RoutingKey":"k"}}`, []string{".origin.RoutingKey"}},
		{`{"version":1,"x-death":[]}`, []string{".x-death"}},
		{`{"version":1,"groups":[{"Key":"a"}]}`, []string{".groups[].Key"}},
	} {
		var doc any
		if err := json.NewDecoder(bytes.NewReader([]byte(tc.doc))).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if got := badKeys(doc, ""); !slices.Equal(got, tc.want) {
			t.Errorf("badKeys(%s) = %v, want %v", tc.doc, got, tc.want)
		}
	}
}
