package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/metrics"
	"github.com/warrenmq/warren/topology"
	"github.com/warrenmq/warren/worker"
)

func exampleURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return broker.DefaultURL
}

// The metrics of a producer and a worker pool, registered on a registry of
// their own and served for Prometheus to scrape.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	topo, err := topology.Parse("example.yaml", []byte(`
exchanges:
  example.metrics.jobs: {type: direct, auto_delete: true}
queues:
  example.metrics.emails: {type: classic, expires: 1m}
bindings:
  - {exchange: example.metrics.jobs, queue: example.metrics.emails, routing_key: email.send}
routes:
  email.send: {exchange: example.metrics.jobs}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// The job types label the metrics: those of the topology, and
	// "other" for any type a producer makes up.
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithJobTypes(topo.JobTypes()...))
	if err != nil {
		fmt.Println(err)
		return
	}

	// One line each: everything on these connections is counted — the
	// producer's publishes, the pool's jobs, retries, dead letters and
	// replies, and reconnections (labelled with the connection's name).
	conn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-metrics-worker"), broker.WithObserver(m))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	pubConn, err := broker.Dial(ctx, []string{exampleURL()}, broker.WithName("example-metrics-publisher"), broker.WithObserver(m))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pubConn.Close()
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
	mux.HandleFunc("email.send", func(ctx context.Context, job *worker.Job) error { return nil })
	var settled atomic.Int32
	pool, err := worker.NewPool(conn, topo, mux,
		worker.WithQueue("example.metrics.emails"),
		worker.WithSender(snd),
		worker.WithObserver(worker.OutcomeFunc(func(worker.Outcome) {
			if settled.Add(1) == 2 {
				stop() // the example ends after two jobs
			}
		})))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		if err := pub.Publish(ctx, broker.Job{Type: "email.send"}); err != nil {
			fmt.Println(err)
			return
		}
	}
	if err := pool.Run(runCtx); err != nil {
		fmt.Println(err)
		return
	}

	// In a daemon: http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})).
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "warren_jobs_p") {
			fmt.Println(l)
		}
	}
	// Output:
	// warren_jobs_processed_total{outcome="succeeded",queue="example.metrics.emails",type="email.send"} 2
	// warren_jobs_published_total{kind="job",outcome="ok",type="email.send"} 2
}
