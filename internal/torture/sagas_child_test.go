//go:build torture

package torture_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/inbox/pginbox"
	"github.com/warrenmq/warren/outbox"
	"github.com/warrenmq/warren/saga"
	"github.com/warrenmq/warren/worker"
)

// The children of TestSagas.
const (
	roleSagaStep    = "saga-step"   // runs the sagas' commands through a PostgreSQL inbox
	roleCoordinator = "coordinator" // a saga coordinator
)

// sagaSteps is the number of steps of the torture's saga.
const sagaSteps = 4

// sagaState is the torture saga's state: its plan (the step that fails,
// -1 for none) and the steps' results.
type sagaState struct {
	N       int      `json:"n"`
	Fails   int      `json:"fails"`
	Results []string `json:"results"`
}

// sagaCompensated says which of the saga's steps have a compensation.
var sagaCompensated = [sagaSteps]bool{true, false, true, false}

// sagaCommand is a command's payload.
type sagaCommand struct {
	N     int    `msgpack:"n"`
	Place int    `msgpack:"place"`
	Fail  bool   `msgpack:"fail,omitempty"`
	Undo  string `msgpack:"undo,omitempty"` // a compensation's: its step's result
	DieAt bool   `msgpack:"die,omitempty"`  // the worker dies once the inbox committed the effect
}

// sagaConsumer names the step workers' inbox records.
const sagaConsumer = "torture.saga"

// defineTortureSaga returns the torture's saga: sagaSteps steps, each a
// command "saga.step" whose result the state keeps, the compensations
// "saga.undo" on those results.
func defineTortureSaga() (*saga.Definition[sagaState], error) {
	var steps []saga.Step[sagaState]
	for place := range sagaSteps {
		step := saga.Step[sagaState]{
			Name: fmt.Sprintf("s%d", place),
			Command: func(_ context.Context, s *sagaState) (broker.Job, error) {
				return broker.Job{Type: "saga.step", Payload: sagaCommand{N: s.N, Place: place, Fail: place == s.Fails, DieAt: (s.N+place)%23 == 0}}, nil
			},
			OnReply: func(_ context.Context, s *sagaState, r saga.Reply) error {
				var res string
				if err := r.Decode(&res); err != nil {
					return err
				}
				if res == "" {
					return errors.New("an empty result")
				}
				s.Results = append(s.Results, res)
				return nil
			},
			Timeout: 2 * time.Minute,
		}
		if sagaCompensated[place] {
			step.Compensate = func(_ context.Context, s *sagaState) (broker.Job, error) {
				return broker.Job{Type: "saga.undo", Payload: sagaCommand{N: s.N, Place: place, Undo: s.Results[place]}}, nil
			}
		}
		steps = append(steps, step)
	}
	return saga.Define("torture", steps...)
}

// coordinatorChild runs a coordinator of the torture saga until its stdin
// ends.
func coordinatorChild(ctx context.Context) error {
	ch, closeChild, err := openChild(ctx)
	if err != nil {
		return err
	}
	defer closeChild()
	def, err := defineTortureSaga()
	if err != nil {
		return err
	}
	c, err := saga.NewCoordinator(ch.db, ch.conn, ch.topo, saga.WithReplyQueue(os.Getenv(childQueueEnv)), saga.WithLogger(ch.log),
		saga.WithRelayOptions(outbox.WithPollInterval(200*time.Millisecond), outbox.WithBatchSize(10)))
	if err != nil {
		return err
	}
	if err := c.Register(def); err != nil {
		return err
	}
	if err := c.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// sagaStepChild runs the sagas' commands: each writes its effect in the
// inbox's transaction (a row in saga_effects) and replies with its
// result; a step planned to fail fails for good; a few kill their worker
// once the effect committed, before the reply and the ack.
func sagaStepChild(ctx context.Context) error {
	var rep reporter
	ch, closeChild, err := openChild(ctx)
	if err != nil {
		return err
	}
	defer closeChild()
	ib, err := ch.pgInbox(sagaConsumer)
	if err != nil {
		return err
	}
	handle := worker.HandlerFunc(func(ctx context.Context, job *worker.Job) error {
		var c sagaCommand
		if err := job.Decode(&c); err != nil {
			return err
		}
		if c.Fail {
			return worker.Permanent(errors.New("torture: a saga's step failing for good, on purpose"))
		}
		kind, payload := "step", ""
		if job.Type == "saga.undo" {
			kind, payload = "compensation", c.Undo
		}
		tx := pginbox.Tx(ctx)
		if tx == nil {
			return worker.Permanent(errors.New("no inbox transaction in the handler's ctx"))
		}
		if _, err := tx.Exec(ctx, "INSERT INTO saga_effects (n, kind, place, payload, worker) VALUES ($1, $2, $3, $4, $5)",
			c.N, kind, c.Place, payload, ch.name); err != nil {
			return err
		}
		if kind == "step" {
			job.SetResult(fmt.Sprintf("n%d/s%d", c.N, c.Place))
		}
		markRan(ctx)
		return nil
	})
	// A death after the commit, before the reply is sent.
	report := rep.effects(func(job *worker.Job) bool {
		var c sagaCommand
		return job.Decode(&c) == nil && c.DieAt
	})
	return ch.run(ctx, report(ib.Middleware(handle)), 10*time.Second)
}
