package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

func TestMuxMiddlewareOrder(t *testing.T) {
	var calls []string
	trace := func(name string) worker.Middleware {
		return func(next worker.Handler) worker.Handler {
			return worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
				calls = append(calls, name+">")
				err := next.HandleJob(ctx, job)
				calls = append(calls, "<"+name)
				return err
			})
		}
	}
	mux := worker.NewMux()
	mux.HandleFunc("a", func(ctx context.Context, job *worker.Job) error {
		calls = append(calls, "a")
		return nil
	})
	mux.Use(trace("outer"), trace("inner")) // after Handle: still wraps it
	if err := mux.HandleJob(context.Background(), &worker.Job{Type: "a"}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(calls, " "), "outer> inner> a <inner <outer"; got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if got := mux.Types(); len(got) != 1 || got[0] != "a" {
		t.Errorf("Types() = %v", got)
	}
}

func TestMuxRefusesMistakes(t *testing.T) {
	noop := func(ctx context.Context, job *worker.Job) error { return nil }
	for name, register := range map[string]func(m *worker.Mux){
		"empty type":  func(m *worker.Mux) { m.HandleFunc("", noop) },
		"nil handler": func(m *worker.Mux) { m.Handle("a", nil) },
		"duplicate": func(m *worker.Mux) {
			m.HandleFunc("a", noop)
			m.HandleFunc("a", noop)
		},
		"version 0":             func(m *worker.Mux) { m.HandleVersion("a", 0, worker.HandlerFunc(noop)) },
		"version of empty type": func(m *worker.Mux) { m.HandleVersion("", 1, worker.HandlerFunc(noop)) },
		"nil version handler":   func(m *worker.Mux) { m.HandleVersion("a", 1, nil) },
		"duplicate version": func(m *worker.Mux) {
			m.HandleVersion("a", 2, worker.HandlerFunc(noop))
			m.HandleVersion("a", 2, worker.HandlerFunc(noop))
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			register(worker.NewMux())
		})
	}
}

func TestMuxVersions(t *testing.T) {
	mux := worker.NewMux()
	var got []string
	record := func(name string) worker.HandlerFunc {
		return func(ctx context.Context, job *worker.Job) error {
			got = append(got, name)
			return nil
		}
	}
	mux.HandleVersion("trip.book", 1, record("book v1"))
	mux.HandleVersion("trip.book", 2, record("book v2"))
	mux.HandleVersion("trip.cancel", 2, record("cancel v2"))
	mux.Handle("trip.cancel", record("cancel any"))
	mux.Handle("trip.rate", record("rate any"))
	for _, job := range []worker.Job{
		{Type: "trip.book"},               // unversioned: version 1
		{Type: "trip.book", Version: 1},   // v1
		{Type: "trip.book", Version: 2},   // v2
		{Type: "trip.cancel", Version: 2}, // its version's handler first
		{Type: "trip.cancel", Version: 1}, // else the type's
		{Type: "trip.cancel"},
		{Type: "trip.rate", Version: 7},
	} {
		if err := mux.HandleJob(context.Background(), &job); err != nil {
			t.Fatalf("%s v%d: %v", job.Type, job.Version, err)
		}
	}
	want := "book v1,book v1,book v2,cancel v2,cancel any,cancel any,rate any"
	if g := strings.Join(got, ","); g != want {
		t.Errorf("dispatched to %s\nwant           %s", g, want)
	}
	err := mux.HandleJob(context.Background(), &worker.Job{Type: "trip.book", Version: 3, Queue: "trips"})
	if !errors.Is(err, worker.ErrUnknownType) || !strings.Contains(err.Error(), `"trip.book" version 3 (queue "trips")`) || !strings.Contains(err.Error(), "HandleVersion") {
		t.Errorf("a version without a handler: %v; want ErrUnknownType naming the version and HandleVersion", err)
	}
	if g := strings.Join(mux.Types(), ","); g != "trip.book,trip.cancel,trip.rate" {
		t.Errorf("Types() = %s", g)
	}
}

func TestTypedDecodesPayload(t *testing.T) {
	type point struct {
		X int `json:"x"`
		Y int `json:"y"`
	}
	var got point
	h := worker.Typed(func(ctx context.Context, job *worker.Job, p point) error {
		got = p
		return nil
	})
	env, err := broker.NewEnvelope(broker.Job{Type: "p", Payload: map[string]int{"x": 1, "y": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleJob(context.Background(), &worker.Job{Type: "p", Envelope: env}); err != nil {
		t.Fatal(err)
	}
	if got != (point{1, 2}) {
		t.Errorf("decoded %+v", got)
	}

	env.Body = []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	err = h.HandleJob(context.Background(), &worker.Job{Type: "p", Envelope: env})
	if !errors.Is(err, broker.ErrBadBody) {
		t.Errorf("bomb body: %v, want ErrBadBody", err)
	}
}

func TestPermanentAndRetryAfterWrap(t *testing.T) {
	base := errors.New("boom")
	if err := worker.Permanent(base); !errors.Is(err, worker.ErrPermanent) || !errors.Is(err, base) || err.Error() != "boom" {
		t.Errorf("Permanent: %v", err)
	}
	if worker.Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if err := worker.RetryAfter(0, base); !errors.Is(err, base) || errors.Is(err, worker.ErrPermanent) {
		t.Errorf("RetryAfter: %v", err)
	}
}
