package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/worker"
)

// python is the interpreter the Python producer runs with: the system's,
// where Debian installs python3-amqp and python3-msgpack.
const python = "/usr/bin/python3"

// pythonProducer returns the path of the py-amqp producer script, failing
// the test with the install command when py-amqp or msgpack is missing.
func pythonProducer(t *testing.T) string {
	t.Helper()
	out, err := exec.Command(python, "-c", "import amqp, msgpack").CombinedOutput()
	if err != nil {
		t.Fatalf("the Python producer test needs %s with py-amqp and msgpack (%v: %s); install them with scripts/deps.sh, "+
			"or: sudo apt-get install python3 python3-amqp python3-msgpack", python, err, strings.TrimSpace(string(out)))
	}
	script, err := filepath.Abs(filepath.Join("..", "testdata", "interop", "publish_py_amqp.py"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	return script
}

// pyJob is one job for the script.
type pyJob struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	RoutingKey string         `json:"routing_key"`
	Payload    map[string]any `json:"payload"`
	Unreadable bool           `json:"unreadable,omitempty"`
}

// pyPayload is what the script's payloads decode into.
type pyPayload struct {
	N           int       `msgpack:"n"`
	Text        string    `msgpack:"text"`
	PublishedAt time.Time `msgpack:"published_at"`
}

// pyHeaders are the script's HEADERS with the Go types warren reads them
// as (see broker.Table). warren-attempt and warren-deadline are read into the envelope.
var pyHeaders = map[string]any{
	"small":         int32(7),
	"big":           int64(1<<40 + 1), // 'L'
	"negative":      int32(-5),
	"very-negative": int64(-1 << 40), // 'L'
	"float":         1.5,
	"flag":          true,
	"text":          "héllo",
	"raw":           "\x00\x01\xff",
	"nothing":       nil,
	"when":          time.Unix(1795514400, 0),
	"price":         broker.Decimal{Scale: 2, Value: 1234},
	"nested":        broker.Table{"k": "v", "n": int64(1 << 40), "list": []any{int32(1), "two", nil}},
	"list":          []any{int32(1), int64(1 << 40), "x", true},
}

// TestPythonProducer: jobs published by py-amqp (Celery's client) as
// docs/wire-format.md says, with headers of every type it writes ('L' for
// warren-deadline in milliseconds and every integer beyond 32 bits), are
// each handled once with their headers read as they were sent; a job that
// fails once is retried with those headers written back, and succeeds; a
// job with a header amqp091-go cannot read is dead-lettered as malformed
// with its properties, while the jobs behind it are handled; and the
// consumer's connection is never lost. On classic queues (headers passed on
// byte for byte) and quorum queues.
func TestPythonProducer(t *testing.T) {
	t.Parallel()
	script := pythonProducer(t)
	for _, queueType := range []string{"classic", "quorum"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			testPythonProducer(t, script, queueType)
		})
	}
}

func testPythonProducer(t *testing.T, script, queueType string) {
	f := newFixture(t, fixtureOpts{queueType: queueType, retry: "{max_attempts: 3, initial_interval: 1s, jitter: 0}"})
	deadline := time.Now().Add(time.Hour).Truncate(time.Millisecond)

	type seen struct {
		attempt int
		payload pyPayload
		headers map[string]any
		env     broker.Envelope
	}
	var (
		mu   sync.Mutex
		runs = map[string][]seen{}
	)
	record := func(job *worker.Job, p pyPayload) {
		mu.Lock()
		defer mu.Unlock()
		runs[job.ID] = append(runs[job.ID], seen{attempt: job.Attempt, payload: p, headers: job.Headers, env: *job.Envelope})
	}
	mux := worker.NewMux()
	mux.Handle("ok", worker.Typed(func(ctx context.Context, job *worker.Job, p pyPayload) error {
		record(job, p)
		return nil
	}))
	mux.Handle("flaky", worker.Typed(func(ctx context.Context, job *worker.Job, p pyPayload) error {
		record(job, p)
		if job.Attempt == 1 {
			return errors.New("fails once")
		}
		return nil
	}))
	outcomes := newLedger()
	f.run(mux, worker.WithObserver(worker.OutcomeFunc(outcomes.observe)))

	var jobs []pyJob
	for i := range 12 {
		j := pyJob{ID: fmt.Sprintf("py-%s-%d", queueType, i), Type: "ok", RoutingKey: "ok", Payload: map[string]any{"n": i, "text": "héllo"}}
		switch i {
		case 2:
			j.Unreadable = true // the jobs behind it must still be handled
		case 5:
			j.Type, j.RoutingKey = "flaky", "flaky"
		}
		jobs = append(jobs, j)
	}
	spec, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := brokertest.Context(t, 60*time.Second)
	out, err := exec.CommandContext(ctx, python, script, brokertest.URL(t), f.exchange, fmt.Sprint(deadline.UnixMilli()), string(spec)).CombinedOutput()
	if err != nil {
		t.Fatalf("the Python producer: %v\n%s", err, out)
	}

	handled := len(jobs) - 1
	testkit.WaitFor(t, 30*time.Second, "every job handled and the unreadable one parked", func() bool {
		return outcomes.status(worker.Succeeded) == handled && outcomes.status(worker.DeadLettered) == 1
	})
	parked := f.dlq(1, 10*time.Second)

	mu.Lock()
	defer mu.Unlock()
	for _, j := range jobs {
		got := runs[j.ID]
		switch {
		case j.Unreadable:
			if len(got) != 0 {
				t.Errorf("%s: handled %d times, want never (parked)", j.ID, len(got))
			}
			continue
		case j.Type == "flaky":
			if len(got) != 2 || got[0].attempt != 1 || got[1].attempt != 2 {
				t.Errorf("%s: runs %+v, want attempt 1 then 2", j.ID, got)
				continue
			}
		case len(got) != 1 || got[0].attempt != 1:
			t.Errorf("%s: handled %d times, want once, attempt 1", j.ID, len(got))
			continue
		}
		// Every run, the retry's included (its headers were written back
		// by warren), sees the headers as the producer sent them, beside
		// the broker's own (x-death of the retry's delay).
		brokers := cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return strings.HasPrefix(k, "x-") })
		for _, s := range got {
			if diff := cmp.Diff(pyHeaders, s.headers, brokers); diff != "" {
				t.Errorf("%s attempt %d: headers (-sent +read):\n%s", j.ID, s.attempt, diff)
			}
			if !s.env.Deadline.Equal(deadline) {
				t.Errorf("%s attempt %d: deadline %v, want %v (warren-deadline in ms, written as 'L')", j.ID, s.attempt, s.env.Deadline, deadline)
			}
			e := s.env
			if e.ContentType != broker.ContentType || e.AppID != "py-producer" || e.Timestamp.IsZero() || time.Since(e.Timestamp) > time.Minute {
				t.Errorf("%s: properties %q %q %v", j.ID, e.ContentType, e.AppID, e.Timestamp)
			}
			if p := s.payload; p.N != j.Payload["n"].(int) || p.Text != "héllo" || time.Since(p.PublishedAt) > time.Minute {
				t.Errorf("%s: payload %+v", j.ID, p)
			}
		}
	}

	var unreadable pyJob
	for _, j := range jobs {
		if j.Unreadable {
			unreadable = j
		}
	}
	d, ok := parked[unreadable.ID]
	if !ok {
		t.Fatalf("the dead-letter queue holds %v, want %s", parked, unreadable.ID)
	}
	if class := d.Headers[broker.HeaderErrorClass]; class != worker.ClassMalformed {
		t.Errorf("parked with class %v, want %s", class, worker.ClassMalformed)
	}
	if msg, _ := d.Headers[broker.HeaderError].(string); !strings.Contains(msg, `header "deep"`) || !strings.Contains(msg, "nested more than 32 deep") {
		t.Errorf("parked with error %q, want one naming the header and why", msg)
	}
	if d.Type != "ok" || d.ContentType != broker.ContentType || d.AppId != "py-producer" || d.Timestamp.IsZero() || len(d.Body) == 0 {
		t.Errorf("parked without its properties: type %q, content type %q, app id %q, timestamp %v, %d body bytes",
			d.Type, d.ContentType, d.AppId, d.Timestamp, len(d.Body))
	}
	if n := f.conn.Reconnects(); n != 0 || f.conn.State() != broker.Connected {
		t.Errorf("consumer connection %v after %d reconnects, want connected, never lost", f.conn.State(), n)
	}
}
