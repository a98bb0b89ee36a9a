package asyncapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/contract/asyncapi"
)

var update = flag.Bool("update", false, "rewrite docs/asyncapi/taxi.yaml from examples/taxi/topology.yaml")

const (
	taxiTopology = "../../examples/taxi/topology.yaml"
	taxiDocument = "../../docs/asyncapi/taxi.yaml"
	richTopology = "testdata/rich/topology.yaml"
)

func load(t *testing.T, path string) *contract.Set {
	t.Helper()
	set, err := contract.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func generate(t *testing.T, path string, opts asyncapi.Options) []byte {
	t.Helper()
	out, err := asyncapi.Generate(load(t, path), opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// decode reads a generated document, YAML or JSON, into maps.
func decode(t *testing.T, doc []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		t.Fatalf("the document does not decode: %v", err)
	}
	return m
}

// at follows a path of keys through a decoded document.
func at(t *testing.T, doc map[string]any, path ...string) any {
	t.Helper()
	var v any = doc
	for i, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, not a mapping", strings.Join(path[:i], "."), v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("no %s in the document", strings.Join(path[:i+1], "."))
		}
	}
	return v
}

// TestTaxiDocument fails when docs/asyncapi/taxi.yaml is not what the taxi
// example's topology gives; -update rewrites it (or: make asyncapi).
func TestTaxiDocument(t *testing.T) {
	got := generate(t, taxiTopology, asyncapi.Options{})
	if *update {
		if err := os.MkdirAll(filepath.Dir(taxiDocument), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(taxiDocument, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(taxiDocument)
	if err != nil {
		t.Fatalf("%v; write it with: go test ./contract/asyncapi -run TestTaxiDocument -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date with %s; regenerate it with `make asyncapi` (go test ./contract/asyncapi -run TestTaxiDocument -update) and commit it.\n%s",
			taxiDocument, taxiTopology, firstDifference(string(want), string(got)))
	}
}

func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  committed: " + wl + "\n  generated: " + gl
		}
	}
	return ""
}

// TestParserAccepts checks the documents with the official AsyncAPI parser
// (scripts/asyncapi-validate.mjs --strict: warnings fail too). It fails,
// not skips, without Node.js or the parser.
func TestParserAccepts(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed, and the documents must be checked with the AsyncAPI parser: run scripts/asyncapi-deps.sh")
	}
	dir := t.TempDir()
	servers := []string{"prod=amqps://user:secret@broker.example:5671/jobs", "amqp://localhost/jobs"}
	var files []string
	for _, tc := range []struct {
		name, topology string
		opts           asyncapi.Options
	}{
		{"taxi.yaml", taxiTopology, asyncapi.Options{}},
		{"taxi.json", taxiTopology, asyncapi.Options{Format: asyncapi.JSON, Servers: []string{"amqp://localhost:5672/"}}},
		{"rich.yaml", richTopology, asyncapi.Options{Title: "Rich", Version: "2.0.1", Servers: servers}},
		{"rich.json", richTopology, asyncapi.Options{Format: asyncapi.JSON, Servers: servers}},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, generate(t, tc.topology, tc.opts), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	cmd := exec.Command(node, append([]string{"../../scripts/asyncapi-validate.mjs", "--strict"}, files...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 2:
		t.Fatalf("the AsyncAPI parser could not run; install it with scripts/asyncapi-deps.sh:\n%s", out)
	case err != nil:
		t.Fatalf("the AsyncAPI parser refuses the documents (%v):\n%s", err, out)
	}
	if n := strings.Count(string(out), ": valid AsyncAPI 3.0.0: 0 warning(s)"); n != len(files) {
		t.Errorf("%d of %d documents valid without warnings:\n%s", n, len(files), out)
	}
}

// TestParserRefuses makes sure the check can fail: a document the parser
// must refuse (an exchange type the AMQP binding does not know).
func TestParserRefuses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: run scripts/asyncapi-deps.sh")
	}
	doc := bytes.Replace(generate(t, taxiTopology, asyncapi.Options{}), []byte("type: direct"), []byte("type: straight"), 1)
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, "../../scripts/asyncapi-validate.mjs", path).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "exchange.type") {
		t.Errorf("the parser accepted a broken document (%v):\n%s", err, out)
	}
}

func TestJSONMatchesYAML(t *testing.T) {
	for _, path := range []string{taxiTopology, richTopology} {
		y := generate(t, path, asyncapi.Options{Servers: []string{"amqp://localhost/"}})
		j := generate(t, path, asyncapi.Options{Servers: []string{"amqp://localhost/"}, Format: asyncapi.JSON})
		var fromJSON map[string]any
		if err := json.Unmarshal(j, &fromJSON); err != nil {
			t.Fatalf("%s: JSON: %v", path, err)
		}
		// Through JSON again: YAML decodes integers as int, JSON as float64.
		var fromYAML map[string]any
		yj, err := json.Marshal(decode(t, y))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(yj, &fromYAML); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fromJSON, fromYAML) {
			t.Errorf("%s: the JSON and YAML documents differ", path)
		}
		if bytes.Contains(j, []byte(`\u003c`)) || !bytes.HasPrefix(j, []byte("{\n  \"asyncapi\": \"3.0.0\",\n")) {
			t.Errorf("%s: JSON starts %q", path, j[:40])
		}
	}
}

func TestDeterministic(t *testing.T) {
	first := generate(t, richTopology, asyncapi.Options{})
	for range 10 {
		if again := generate(t, richTopology, asyncapi.Options{}); !bytes.Equal(first, again) {
			t.Fatal("two runs over the same files differ")
		}
	}
}

func TestRichDocument(t *testing.T) {
	doc := decode(t, generate(t, richTopology, asyncapi.Options{Servers: []string{"amqps://user:secret@broker.example:5671/jobs"}}))

	if s := at(t, doc, "servers", "rabbitmq"); !reflect.DeepEqual(s, map[string]any{
		"host": "broker.example:5671", "protocol": "amqps", "protocolVersion": "0.9.1", "pathname": "/jobs",
		"description": `RabbitMQ, virtual host "jobs".`,
	}) {
		t.Errorf("server %v", s)
	}
	if got := at(t, doc, "info", "title"); got != "rich jobs" {
		t.Errorf("default title %q", got)
	}

	// Exchanges: the file's, then the built-in one a route names.
	trips := at(t, doc, "channels", "tripsExchange", "bindings", "amqp").(map[string]any)
	if trips["is"] != "routingKey" || !reflect.DeepEqual(trips["exchange"], map[string]any{
		"name": "trips", "type": "topic", "durable": true, "autoDelete": false, "vhost": "jobs",
	}) {
		t.Errorf("trips binding %v", trips)
	}
	if got := at(t, doc, "channels", "tripsExchange", "x-warren", "alternateExchange"); got != "trips.unrouted" {
		t.Errorf("alternate exchange %v", got)
	}
	if got := at(t, doc, "channels", "tripsExchange", "parameters", "routingKey", "enum"); !reflect.DeepEqual(got, []any{"trip.book", "trip.cancel.rider", "trip.lost"}) {
		t.Errorf("routing keys %v", got)
	}
	if got := at(t, doc, "channels", "parkingExchange", "x-warren", "internal"); got != true {
		t.Errorf("internal %v", got)
	}
	if got := at(t, doc, "channels", "amqTopicExchange", "bindings", "amqp", "exchange", "type"); got != "topic" {
		t.Errorf("amq.topic type %v", got)
	}

	// Queues and warren's attributes of them.
	bookings := at(t, doc, "channels", "bookingsQueue", "x-warren").(map[string]any)
	if bookings["queueType"] != "quorum" || bookings["deadLetterQueue"] != "bookings.dlq" || bookings["deliveryLimit"] != 5 ||
		bookings["quarantineQueue"] != "bookings.quarantine" {
		t.Errorf("bookings x-warren %v", bookings)
	}
	if got := at(t, doc, "channels", "bookingsQueue", "x-warren", "retry"); !reflect.DeepEqual(got, map[string]any{
		"maxAttempts": 6, "initialInterval": "2s", "maxInterval": "10m", "multiplier": 2, "jitter": 0.2,
	}) {
		t.Errorf("bookings retry %v", got)
	}
	cancellations := at(t, doc, "channels", "cancellationsQueue", "x-warren").(map[string]any)
	if cancellations["queueType"] != "classic" || cancellations["deadLetterExchange"] != "parking" ||
		cancellations["deadLetterRoutingKey"] != "cancellations" || cancellations["deadLetterQueue"] != nil || cancellations["deliveryLimit"] != nil {
		t.Errorf("cancellations x-warren %v", cancellations)
	}
	if got := at(t, doc, "channels", "cancellationsQueue", "bindings", "amqp", "queue"); !reflect.DeepEqual(got, map[string]any{
		"name": "cancellations", "durable": true, "exclusive": false, "autoDelete": false, "vhost": "jobs",
	}) {
		t.Errorf("cancellations binding %v", got)
	}
	// Braces in an address would be parameters.
	if got := at(t, doc, "channels", "tenantIdQueue", "address"); got != nil {
		t.Errorf("address of tenant.{id}: %v", got)
	}
	if got := at(t, doc, "channels", "tenantIdQueue", "bindings", "amqp", "queue", "name"); got != "tenant.{id}" {
		t.Errorf("queue name %v", got)
	}
	channels := at(t, doc, "channels").(map[string]any)
	for name := range channels {
		if strings.Contains(name, "Dlq") || strings.Contains(name, "Quarantine") || strings.Contains(name, "Delay") || strings.Contains(name, "warren") {
			t.Errorf("channel %s: derived entities are left out", name)
		}
	}

	// Operations: routed as RabbitMQ routes, through exchange-to-exchange
	// bindings; a route through a headers exchange has no receive.
	ops := at(t, doc, "operations").(map[string]any)
	var names []string
	for name := range ops {
		names = append(names, name)
	}
	want := []string{
		"receiveReminderSendFromReminders", "receiveReminderSendFromTenantId", "receiveTripBookFromAudit", "receiveTripBookFromAudit2", "receiveTripBookFromBookings",
		"receiveTripCancelFromCancellations", "sendInvoiceRender", "sendReminderSend", "sendTripBook", "sendTripBook2", "sendTripCancel",
	}
	if strings.Join(slices.Sorted(slices.Values(names)), " ") != strings.Join(want, " ") {
		t.Errorf("operations %v, want %v", slices.Sorted(slices.Values(names)), want)
	}
	recv := at(t, doc, "operations", "receiveTripBookFromBookings").(map[string]any)
	if recv["action"] != "receive" || !reflect.DeepEqual(recv["channel"], map[string]any{"$ref": "#/channels/bookingsQueue"}) {
		t.Errorf("receive %v", recv)
	}
	if got := recv["messages"]; !reflect.DeepEqual(got, []any{
		map[string]any{"$ref": "#/channels/bookingsQueue/messages/tripBookV1"},
		map[string]any{"$ref": "#/channels/bookingsQueue/messages/tripBookV2"},
		map[string]any{"$ref": "#/channels/bookingsQueue/messages/tripBookV3"},
	}) {
		t.Errorf("receive messages %v", got)
	}
	// The route's retry block over the queue's.
	if got := at(t, doc, "operations", "receiveTripBookFromBookings", "x-warren", "retry", "maxAttempts"); got != 6 {
		t.Errorf("maxAttempts %v", got)
	}
	if got := at(t, doc, "operations", "receiveTripBookFromBookings", "x-warren", "retry", "initialInterval"); got != "500ms" {
		t.Errorf("initialInterval %v", got)
	}
	if got := at(t, doc, "operations", "receiveTripBookFromBookings", "bindings", "amqp", "ack"); got != true {
		t.Errorf("ack %v", got)
	}
	send := at(t, doc, "operations", "sendTripBook2").(map[string]any)
	if !reflect.DeepEqual(send["channel"], map[string]any{"$ref": "#/channels/tripsExchange"}) ||
		at(t, doc, "operations", "sendTripBook2", "x-warren", "jobType") != "trip.book" ||
		at(t, doc, "operations", "sendTripBook2", "bindings", "amqp", "deliveryMode") != 2 {
		t.Errorf("send %v", send)
	}

	// Messages: one per type and version, a routed type without contract
	// has one without payload; a contract no route names is kept.
	v1 := at(t, doc, "components", "messages", "tripBookV1").(map[string]any)
	if v1["deprecated"] != true || v1["name"] != "trip.book" || v1["contentType"] != "application/msgpack" {
		t.Errorf("tripBookV1 %v", v1)
	}
	if got := at(t, doc, "components", "messages", "tripBookV1", "headers"); got.(map[string]any)["required"] != nil {
		t.Errorf("v1 headers require warren-version: %v", got)
	}
	if got := at(t, doc, "components", "messages", "tripBookV2", "headers", "required"); !reflect.DeepEqual(got, []any{"warren-version"}) {
		t.Errorf("v2 headers required %v", got)
	}
	if got := at(t, doc, "components", "messages", "tripBookV2", "headers", "properties", "warren-version", "const"); got != 2 {
		t.Errorf("v2 header const %v", got)
	}
	if _, ok := at(t, doc, "components", "messages", "tripBookV2").(map[string]any)["deprecated"]; ok {
		t.Error("tripBookV2 is not deprecated")
	}
	if got := at(t, doc, "components", "messages", "tripBookV2", "bindings", "amqp"); !reflect.DeepEqual(got, map[string]any{"messageType": "trip.book", "bindingVersion": "0.3.0"}) {
		t.Errorf("message binding %v", got)
	}
	if got := at(t, doc, "components", "messages", "tripBookV2", "payload", "schemaFormat"); got != asyncapi.SchemaFormat {
		t.Errorf("schemaFormat %v", got)
	}
	schema := at(t, doc, "components", "messages", "tripBookV2", "payload", "schema").(map[string]any)
	if schema["additionalProperties"] != false || schema["x-owner"] != "trips" || schema["title"] != "Booking" {
		t.Errorf("schema %v", schema)
	}
	if got := at(t, doc, "components", "messages", "tripBookV2", "payload", "schema", "properties", "fare", "exclusiveMaximum"); got != 1000.5 {
		t.Errorf("exclusiveMaximum %v", got)
	}
	if got := at(t, doc, "components", "messages", "tripBook", "name"); got != "trip-book" {
		t.Errorf("tripBook is %v", got)
	}
	if _, ok := at(t, doc, "components", "messages", "tripBook").(map[string]any)["payload"]; ok {
		t.Error("a job type without contract has a payload")
	}
	at(t, doc, "components", "messages", "archivedThingV1")
}

// The payload's properties keep the order of the contract file.
func TestPropertyOrder(t *testing.T) {
	out := string(generate(t, richTopology, asyncapi.Options{}))
	i := strings.Index(out, "title: Booking")
	if i < 0 {
		t.Fatal("no tripBookV2 schema")
	}
	rest := out[i:]
	last := -1
	for _, p := range []string{"rider:", "class:", "stops:", "fare:", "legacy:"} {
		j := strings.Index(rest, p)
		if j < last {
			t.Errorf("%s is out of the file's order", p)
		}
		last = j
	}
}

func TestNoTopology(t *testing.T) {
	set := load(t, "testdata/rich/contracts/trips.yaml")
	_, err := asyncapi.Generate(set, asyncapi.Options{})
	if !errors.Is(err, asyncapi.ErrNoTopology) || !strings.Contains(err.Error(), "pass the topology file") {
		t.Errorf("Generate(contracts file) = %v", err)
	}
	if _, err := asyncapi.Generate(nil, asyncapi.Options{}); !errors.Is(err, asyncapi.ErrNoTopology) {
		t.Errorf("Generate(nil) = %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	set := load(t, taxiTopology)
	for _, tc := range []struct {
		opts asyncapi.Options
		want string
	}{
		{asyncapi.Options{Format: "xml"}, `unknown format "xml"; use "yaml" or "json"`},
		{asyncapi.Options{Servers: []string{"http://user:secret@host/"}}, `server "http://host/"`},
		{asyncapi.Options{Servers: []string{"a b=amqp://host/"}}, `server name "a b"`},
		{asyncapi.Options{Servers: []string{"amqp://user:secret@host:bad/"}}, `server "amqp://host:bad/": parse "amqp://host:bad/": invalid port`},
		{asyncapi.Options{Servers: []string{"amqp://user:secret@ho st/"}}, `server "amqp://ho st/"`},
		{asyncapi.Options{Servers: []string{"amqp://a/", "rabbitmq=amqp://b/"}}, `two servers are named "rabbitmq"`},
	} {
		_, err := asyncapi.Generate(set, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("Generate(%+v) = %v; want %q", tc.opts, err, tc.want)
		}
	}
}

func TestServerCredentialsLeftOut(t *testing.T) {
	out := generate(t, taxiTopology, asyncapi.Options{Servers: []string{"amqp://operator:s3cret@broker:5672/%2F"}})
	if bytes.Contains(out, []byte("s3cret")) || bytes.Contains(out, []byte("operator")) {
		t.Error("the document holds the URL's credentials")
	}
	doc := decode(t, out)
	if got := at(t, doc, "servers", "rabbitmq", "pathname"); got != "/%2F" {
		t.Errorf("pathname %v", got)
	}
	if got := at(t, doc, "channels", "taxiRequestsExchange", "bindings", "amqp", "exchange", "vhost"); got != "/" {
		t.Errorf("vhost %v", got)
	}
}
