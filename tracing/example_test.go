package tracing_test

import (
	"context"
	"fmt"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/tracing"
	"github.com/warrenmq/warren/worker"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// A producer and a worker pool traced end to end: the job carries the
// producer span's context in its traceparent header, and the worker's
// span is its child.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// In a service: an OTLP exporter behind a batch span processor, and
	// otel.SetTracerProvider(tp), which New uses by default.
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background())
	tr, err := tracing.New(tracing.WithTracerProvider(tp))
	if err != nil {
		fmt.Println(err)
		return
	}

	// One line each: the publishes, calls and jobs of everything on these
	// connections get spans, the pool's retries, dead letters and replies
	// in the job's trace.
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-tracing-worker"), broker.WithObserver(tr))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	pubConn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-tracing-publisher"), broker.WithObserver(tr))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pubConn.Close()
	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.tracing.jobs: {type: direct, auto_delete: true}
queues:
  example.tracing.emails: {type: classic, expires: 1m}
bindings:
  - {exchange: example.tracing.jobs, queue: example.tracing.emails, routing_key: email.send}
routes:
  email.send: {exchange: example.tracing.jobs}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(ctx)
	if _, err := topology.Declare(ctx, d, topo); err != nil {
		fmt.Println(err)
		return
	}

	pub, err := broker.NewPublisher(pubConn, broker.WithRouter(topo))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pub.Close(ctx)
	snd, err := broker.NewSender(pubConn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer snd.Close(ctx)

	runCtx, stop := context.WithCancel(ctx)
	mux := worker.NewMux()
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error {
		stop() // the example ends after one job
		return nil
	})
	pool, err := worker.NewPool(conn, topo, mux,
		worker.WithQueue("example.tracing.emails"),
		worker.WithSender(snd)) // a span per delivery: the Tracing of conn
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := pub.Publish(ctx, broker.Job{Type: "email.send"}); err != nil {
		fmt.Println(err)
		return
	}
	if err := pool.Run(runCtx); err != nil {
		fmt.Println(err)
		return
	}

	var producer, consumer tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		switch s.SpanKind.String() {
		case "producer":
			producer = s
		case "consumer":
			consumer = s
		}
	}
	fmt.Println(producer.Name, "/", consumer.Name)
	fmt.Println("one trace:", producer.SpanContext.TraceID() == consumer.SpanContext.TraceID())
	fmt.Println("consumer is the producer's child:", consumer.Parent.SpanID() == producer.SpanContext.SpanID())
	// Output:
	// publish example.tracing.jobs / process example.tracing.emails
	// one trace: true
	// consumer is the producer's child: true
}
