package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/worker"
)

// Status is where a saga is in its life.
type Status string

// A saga's statuses. Completed, Compensated and Failed are its end states.
const (
	// Running: a step's command is pending.
	Running Status = "running"
	// Compensating: a step failed or timed out; a compensation is pending.
	Compensating Status = "compensating"
	// Completed: every step succeeded.
	Completed Status = "completed"
	// Compensated: a step failed or timed out, and the compensations of the
	// steps that had succeeded all succeeded.
	Compensated Status = "compensated"
	// Failed: a compensation failed or timed out; the saga stopped there and
	// needs an operator (see docs/workflows.md).
	Failed Status = "failed"
)

// Ended reports whether s is an end state.
func (s Status) Ended() bool { return s == Completed || s == Compensated || s == Failed }

// Step is one step of a saga: a command sent to a service, whose reply
// advances the saga, and what undoes it.
type Step[S any] struct {
	// Name names the step, unique in its saga; it is recorded with each
	// command sent (warren saga show).
	Name string
	// Command builds the step's command from the state: a job routed by the
	// coordinator's topology (its type must have a route). Its ID, ReplyTo
	// and CorrelationID are set by the coordinator. Required.
	Command func(ctx context.Context, state *S) (broker.Job, error)
	// OnReply updates the state from the command's successful reply
	// (r.Decode). An error fails the step, as a failure reply would.
	// Optional.
	OnReply func(ctx context.Context, state *S, r Reply) error
	// Compensate builds the command that undoes the step once it has
	// succeeded, sent when a later step fails or times out; Cause(ctx)
	// says why. Optional: a step without one is not undone.
	Compensate func(ctx context.Context, state *S) (broker.Job, error)
	// Timeout bounds the wait for the reply to the step's command and to
	// its compensation; 0: no bound.
	Timeout time.Duration
}

// causeKey keys the cause of a compensation in the ctx Compensate gets.
type causeKey struct{}

// Cause returns why the saga is being undone, in the ctx a step's
// Compensate function is given: the error of the step that failed, or
// that it timed out, as `warren saga show` lists it (last_error). It is
// "" in any other ctx.
func Cause(ctx context.Context) string {
	s, _ := ctx.Value(causeKey{}).(string)
	return s
}

// Reply is the successful reply to a command.
type Reply struct {
	// CorrelationID is the command's job id.
	CorrelationID string
	// Step is the step's name.
	Step string
	job  *worker.Job
}

// Decode decodes the reply's result (what the step's handler set with
// worker.TypedResult or Job.SetResult) into v.
func (r Reply) Decode(v any) error {
	if r.job == nil {
		return errors.New("saga: the reply has no result")
	}
	return r.job.Decode(v)
}

// Definition is a saga's definition: its name and its steps, run in order.
// Register it with a Coordinator; start instances with Start.
type Definition[S any] struct {
	name  string
	steps []Step[S]
}

// Define returns the definition of a saga of state S (persisted as JSON:
// S must marshal with encoding/json). Every problem of the definition is
// reported at once.
func Define[S any](name string, steps ...Step[S]) (*Definition[S], error) {
	var problems []string
	if strings.TrimSpace(name) == "" {
		problems = append(problems, "the saga has no name")
	}
	if len(steps) == 0 {
		problems = append(problems, "the saga has no steps")
	}
	seen := map[string]int{}
	for i, s := range steps {
		what := fmt.Sprintf("step %d (%q)", i+1, s.Name)
		if strings.TrimSpace(s.Name) == "" {
			what = fmt.Sprintf("step %d", i+1)
			problems = append(problems, what+" has no name")
		} else if j, ok := seen[s.Name]; ok {
			problems = append(problems, fmt.Sprintf("%s has the name of step %d: step names must be unique", what, j+1))
		} else {
			seen[s.Name] = i
		}
		if s.Command == nil {
			problems = append(problems, what+" has no Command")
		}
		if s.Timeout < 0 {
			problems = append(problems, fmt.Sprintf("%s has a negative Timeout (%s); use 0 for none", what, s.Timeout))
		}
	}
	var zero S
	if _, err := json.Marshal(zero); err != nil {
		problems = append(problems, fmt.Sprintf("its state type %T does not marshal as JSON: %v", zero, err))
	}
	if len(problems) > 0 {
		return nil, &DefinitionError{Saga: name, Problems: problems}
	}
	return &Definition[S]{name: name, steps: append([]Step[S](nil), steps...)}, nil
}

// Name returns the saga's name.
func (d *Definition[S]) Name() string { return d.name }

// The coordinator's view of a definition, whatever its S.

func (d *Definition[S]) numSteps() int { return len(d.steps) }

func (d *Definition[S]) stepName(i int) string { return d.steps[i].Name }

func (d *Definition[S]) timeout(i int) time.Duration { return d.steps[i].Timeout }

func (d *Definition[S]) hasCompensation(i int) bool { return d.steps[i].Compensate != nil }

func (d *Definition[S]) decode(state []byte) (*S, error) {
	s := new(S)
	if err := json.Unmarshal(state, s); err != nil {
		return nil, fmt.Errorf("saga %s: decode the state: %w", d.name, err)
	}
	return s, nil
}

// command builds step i's command (or compensation) from state.
func (d *Definition[S]) command(ctx context.Context, state []byte, i int, compensation bool) (broker.Job, error) {
	s, err := d.decode(state)
	if err != nil {
		return broker.Job{}, err
	}
	f := d.steps[i].Command
	if compensation {
		f = d.steps[i].Compensate
	}
	job, err := f(ctx, s)
	if err != nil {
		return broker.Job{}, err
	}
	if job.Type == "" {
		return broker.Job{}, fmt.Errorf("the job has no Type")
	}
	return job, nil
}

// onReply runs step i's OnReply on state and returns the new state.
func (d *Definition[S]) onReply(ctx context.Context, state []byte, i int, r Reply) ([]byte, error) {
	if d.steps[i].OnReply == nil {
		return state, nil
	}
	s, err := d.decode(state)
	if err != nil {
		return nil, err
	}
	if err := d.steps[i].OnReply(ctx, s, r); err != nil {
		return nil, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("saga %s: encode the state: %w", d.name, err)
	}
	return b, nil
}

// Def is what Register takes: a *Definition[S], whatever its S.
type Def interface {
	Name() string
	numSteps() int
	stepName(i int) string
	timeout(i int) time.Duration
	hasCompensation(i int) bool
	command(ctx context.Context, state []byte, i int, compensation bool) (broker.Job, error)
	onReply(ctx context.Context, state []byte, i int, r Reply) ([]byte, error)
}
