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
