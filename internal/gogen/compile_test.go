package gogen_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// moduleRoot is the warren module's directory, from this package's.
const moduleRoot = "../.."

// TestGeneratedCodeCompiles writes the generated code into packages inside
// the module, so that they can import broker and worker, and runs the go
// tool on them: go vet on the taxi example's code, go test on the rich
// one's with a test that publishes each shape through PublishTripBookV2,
// checks the payload against its contract and handles it with
// HandleTripBookV2; and go build on a package with a payload's typo,
// which must not compile.
func TestGeneratedCodeCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to compile the generated code: %v", err)
	}
	dir, err := os.MkdirTemp(moduleRoot, "gogen-compile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	rich, err := filepath.Abs("testdata/rich.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]map[string]string{
		"taxi": {
			"taxi_contracts.go": string(generate(t, "../../examples/taxi/topology.yaml", "topology.yaml", "taxi")),
			"taxi.go":           taxiUse,
		},
		"rich": {
			"rich_contracts.go": string(generate(t, "testdata/rich.yaml", "rich.yaml", "rich")),
			"rich_test.go":      strings.ReplaceAll(richTest, "CONTRACTS", strconv.Quote(rich)),
		},
		"typo": {
			"typo_contracts.go": string(generate(t, "testdata/rich.yaml", "rich.yaml", "typo")),
			"typo.go":           typoUse,
		},
	}
	for pkg, files := range pkgs {
		for name, src := range files {
			path := filepath.Join(dir, pkg, name)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rel := "./" + filepath.Base(dir)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(goTool, args...)
		cmd.Dir = moduleRoot
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("vet", rel+"/taxi", rel+"/rich"); err != nil {
		t.Errorf("go vet: %v\n%s", err, out)
	}
	if out, err := run("test", "-count=1", "-v", rel+"/rich"); err != nil || !strings.Contains(out, "--- PASS: TestRoundTrip") {
		t.Errorf("go test: %v\n%s", err, out)
	}
	out, err := run("build", rel+"/typo")
	if err == nil {
		t.Error("go build of a payload with a typo succeeded; want a compile error")
	}
	for _, want := range []string{"unknown field Ridr in struct literal", "cannot use TripBookV1{} (value of struct type TripBookV1) as TripBookV2 value"} {
		if !strings.Contains(out, want) {
			t.Errorf("go build output lacks %q:\n%s", want, out)
		}
	}
}

// taxiUse uses the taxi example's generated code as a service would.
const taxiUse = `package taxi

import (
	"context"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// Charge publishes a charge and registers its handler.
func Charge(ctx context.Context, p *broker.Publisher, m *worker.Mux) error {
	HandleBillingChargeV1(m, func(ctx context.Context, job *worker.Job, v BillingChargeV1) error {
		_ = v.Amount + 1
		return nil
	})
	return PublishBillingChargeV1(ctx, p, BillingChargeV1{Trip: "t1", Ride: "r1", Rider: "ada", Amount: 1250}, broker.ToQueue("billing"))
}
`

// typoUse misspells a property and publishes the wrong version.
const typoUse = `package typo

import "context"

func publish(ctx context.Context, p Publisher) error {
	if err := PublishTripBookV2(ctx, p, TripBookV2{Ridr: "ada"}); err != nil {
		return err
	}
	return PublishTripBookV2(ctx, p, TripBookV1{})
}
`

// richTest publishes, checks and handles payloads of the rich contracts.
const richTest = `package rich

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/worker"
)

type fakePublisher struct{ jobs []broker.Job }

func (f *fakePublisher) Publish(_ context.Context, job broker.Job, _ ...broker.PublishOption) error {
	f.jobs = append(f.jobs, job)
	return nil
}

// deliver sends job through its envelope's MessagePack body to m, as a
// pool would, after checking the body against the job's contract.
func deliver(t *testing.T, set *contract.Set, m *worker.Mux, job broker.Job) {
	t.Helper()
	env, err := broker.NewEnvelope(job)
	if err != nil {
		t.Fatal(err)
	}
	var payload any
	if err := env.Decode(&payload); err != nil {
		t.Fatal(err)
	}
	if err := set.Validate(job.Type, job.Version, payload); err != nil {
		t.Errorf("payload %v: %v", payload, err)
	}
	if err := m.HandleJob(context.Background(), &worker.Job{ID: env.ID, Type: env.Type, Version: env.Version, Envelope: env}); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTrip(t *testing.T) {
	set, err := contract.Load(CONTRACTS)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	note := "gate 4"
	v2 := TripBookV2{
		TripID: "t1", Rider: "ada", Class: TripBookV2ClassFirstClass, PickupAt: at, DropoffAt: &at,
		Stops: []TripBookV2Stops{
			{At: at, Note: &note, Place: &TripBookV2StopsPlace{Lat: 51.5, Lon: -0.1}},
			{At: at.Add(time.Hour)},
		},
		Fare: 12.5, Seats: 2, Tags: []TripBookV2Tags{TripBookV2TagsPet},
		Driver: &TripBookV2Driver{ID: "d1", ETASeconds: 90},
		Extras: map[string]int64{"bags": 2}, Meta: map[string]any{"source": "app"},
		Anything: "x", ChildSeat: true, Ratio: 0.5,
	}
	v1 := TripBookV1{Rider: "ada", Seats: 3}
	v3 := TripBookV3{"a": {Count: 1}}
	cancel := TripCancelV1{TripID: "t1", Mode: TripCancelV1ModeRider}

	var p fakePublisher
	ctx := context.Background()
	for _, err := range []error{
		PublishTripBookV2(ctx, &p, v2),
		PublishTripBookV1(ctx, &p, v1),
		PublishTripBookV3(ctx, &p, v3),
		PublishTripCancelV1(ctx, &p, cancel),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		jobType string
		version int
	}{{TripBookType, 2}, {"trip.book", 1}, {"trip.book", 3}, {"trip.cancel", 1}}
	if len(p.jobs) != len(want) {
		t.Fatalf("published %d jobs, want %d", len(p.jobs), len(want))
	}
	for i, w := range want {
		if p.jobs[i].Type != w.jobType || p.jobs[i].Version != w.version {
			t.Errorf("job %d is %s v%d, want %s v%d", i, p.jobs[i].Type, p.jobs[i].Version, w.jobType, w.version)
		}
	}

	m := worker.NewMux()
	var got2 TripBookV2
	var got1 []TripBookV1
	var got3 TripBookV3
	var gotCancel TripCancelV1
	HandleTripBookV2(m, func(_ context.Context, _ *worker.Job, v TripBookV2) error { got2 = v; return nil })
	HandleTripBookV1(m, func(_ context.Context, _ *worker.Job, v TripBookV1) error { got1 = append(got1, v); return nil })
	HandleTripBookV3(m, func(_ context.Context, _ *worker.Job, v TripBookV3) error { got3 = v; return nil })
	HandleTripCancelV1(m, func(_ context.Context, _ *worker.Job, v TripCancelV1) error { gotCancel = v; return nil })
	for _, job := range p.jobs {
		deliver(t, set, m, job)
	}
	// An unversioned job is version 1.
	unversioned := p.jobs[1]
	unversioned.Version = 0
	deliver(t, set, m, unversioned)

	utc := cmp.Transformer("UTC", func(t time.Time) time.Time { return t.UTC() })
	if diff := cmp.Diff(v2, got2, utc); diff != "" {
		t.Errorf("TripBookV2 (-sent +handled):\n%s", diff)
	}
	if diff := cmp.Diff([]TripBookV1{v1, v1}, got1); diff != "" {
		t.Errorf("TripBookV1 (-sent +handled):\n%s", diff)
	}
	if diff := cmp.Diff(v3, got3); diff != "" {
		t.Errorf("TripBookV3 (-sent +handled):\n%s", diff)
	}
	if diff := cmp.Diff(cancel, gotCancel); diff != "" {
		t.Errorf("TripCancelV1 (-sent +handled):\n%s", diff)
	}
}
`
