package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/contracttest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

type tripV1 struct {
	Rider string `json:"rider"`
	Seats int    `json:"seats,omitempty"`
}

type tripV2 struct {
	Rider string `json:"rider"`
	Seats int    `json:"seats,omitempty"`
	Class string `json:"class"`
}

func tripV1ToV2(v tripV1) (tripV2, error) {
	if v.Rider == "no-upcast" {
		return tripV2{}, errors.New("rider no-upcast has no class of car")
	}
	return tripV2{Rider: v.Rider, Seats: v.Seats, Class: "standard"}, nil
}

// seen is what the trip.book handler saw of one job.
type seen struct {
	version, attempt int
	trip             tripV2
}

func TestValidatorAndUpcast(t *testing.T) {
	t.Parallel()
	set := contracttest.Parse(t, contracttest.Trips)
	f := newFixture(t, fixtureOpts{types: []string{"trip.book", "trip.other"}})

	var mu sync.Mutex
	handled := map[string][]seen{} // by rider
	var done sync.WaitGroup
	book := func(ctx context.Context, job *worker.Job, v tripV2) error {
		mu.Lock()
		handled[v.Rider] = append(handled[v.Rider], seen{job.Version, job.Attempt, v})
		mu.Unlock()
		switch {
		case v.Rider == "flaky" && job.Attempt == 1:
			return errors.New("the fleet service is down")
		case v.Rider == "doomed":
			return worker.Permanent(errors.New("rider doomed is banned"))
		}
		done.Done()
		return nil
	}
	mux := worker.NewMux()
	mux.HandleVersion("trip.book", 1, worker.Upcast(tripV1ToV2, book))
	mux.HandleVersion("trip.book", 2, worker.Typed(book))
	mux.HandleFunc("trip.other", func(ctx context.Context, job *worker.Job) error { done.Done(); return nil })
	f.run(mux, worker.WithValidator(set))

	ctx := brokertest.Context(t, 30*time.Second)
	publish := func(jobType string, version int, payload any) string {
		t.Helper()
		job := broker.Job{ID: brokertest.JobID(t), Type: jobType, Version: version, Payload: payload}
		if err := f.pub.Publish(ctx, job); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		return job.ID
	}
	done.Add(4)
	publish("trip.book", 1, tripV1{Rider: "ann", Seats: 2})                   // upcast
	publish("trip.book", 0, tripV1{Rider: "abe"})                             // unversioned: v1, upcast
	publish("trip.book", 2, tripV2{Rider: "flaky", Class: "comfort"})         // fails once
	publish("trip.other", 1, map[string]any{"anything": true})                // no contract: unchecked
	badV1 := publish("trip.book", 1, tripV1{Rider: "", Seats: 12})            // two problems
	badV2 := publish("trip.book", 2, tripV1{Rider: "cy"})                     // no class
	wrongClass := publish("trip.book", 2, tripV2{Rider: "di", Class: "limo"}) // not in the enum
	noUpcast := publish("trip.book", 1, tripV1{Rider: "no-upcast"})           // up fails
	doomed := publish("trip.book", 2, tripV2{Rider: "doomed", Class: "van"})  // handler's own failure
	want := map[string]struct {
		class   string
		version string
		words   []string
	}{
		badV1:      {worker.ClassSchema, "1", []string{"trip.book v1", "/seats", "/rider", "replay"}},
		badV2:      {worker.ClassSchema, "2", []string{"trip.book v2", "class"}},
		wrongClass: {worker.ClassSchema, "2", []string{"/class", "standard"}},
		noUpcast:   {worker.ClassSchema, "1", []string{"upcast of trip.book v1", "no class of car"}},
		doomed:     {worker.ClassPermanent, "2", []string{"banned"}},
	}
	got := f.dlq(len(want), 20*time.Second)
	testkit.WaitDone(t, &done, 20*time.Second, "the valid jobs")
	for id, w := range want {
		d, ok := got[id]
		if !ok {
			t.Errorf("job %s (%v) not in the dead-letter queue", id, w)
			continue
		}
		text, _ := d.Headers[broker.HeaderError].(string)
		if c := d.Headers[broker.HeaderErrorClass]; c != w.class {
			t.Errorf("job %s: class %v, want %s (error %q)", id, c, w.class, text)
		}
		if v := fmt.Sprint(d.Headers[broker.HeaderVersion]); v != w.version {
			t.Errorf("job %s: dead-lettered with %s %s, want %s", id, broker.HeaderVersion, v, w.version)
		}
		for _, word := range w.words {
			if !strings.Contains(text, word) {
				t.Errorf("job %s: error %q does not say %q", id, text, word)
			}
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, rider := range []string{"", "cy", "di", "no-upcast"} {
		if s, ok := handled[rider]; ok {
			t.Errorf("rider %q: the handler saw a payload refused before it: %+v", rider, s)
		}
	}
	for rider, wantSeen := range map[string][]seen{
		"ann":    {{1, 1, tripV2{Rider: "ann", Seats: 2, Class: "standard"}}},
		"abe":    {{0, 1, tripV2{Rider: "abe", Class: "standard"}}},
		"flaky":  {{2, 1, tripV2{Rider: "flaky", Class: "comfort"}}, {2, 2, tripV2{Rider: "flaky", Class: "comfort"}}},
		"doomed": {{2, 1, tripV2{Rider: "doomed", Class: "van"}}},
	} {
		if s := handled[rider]; fmt.Sprint(s) != fmt.Sprint(wantSeen) {
			t.Errorf("rider %q: the handler saw %+v, want %+v", rider, s, wantSeen)
		}
	}
}

func TestWithValidatorNil(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fixtureOpts{types: []string{"trip.book"}})
	_, err := worker.NewPool(f.conn, f.topo, worker.NewMux(), worker.WithValidator(nil))
	if err == nil || !strings.Contains(err.Error(), "WithValidator") {
		t.Errorf("NewPool with WithValidator(nil): %v; want an error naming it", err)
	}
}
