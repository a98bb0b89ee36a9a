// Package metrics exports Prometheus metrics of warren's own work:
// publishes and their confirms, jobs processed by outcome, handler
// durations, jobs in flight, replies, calls and reconnections.
//
// metrics only watches: it counts what broker and worker tell it, and
// never publishes, settles or changes a job; it imports no AMQP client.
// Its collectors live on the registry it is given, and serving them is the
// daemon's (or the program's) job.
//
// Nothing is registered globally: New registers its collectors on the
// prometheus.Registerer it is given, under the namespace "warren", and
// the Metrics it returns is wired in by hand:
//
//	m, err := metrics.New(reg, metrics.WithJobTypes(topo.JobTypes()...))
//	pub, err := broker.NewPublisher(conn, broker.WithPublishHook(m.PublishHook()))
//	snd, err := broker.NewSender(conn, broker.WithPublishHook(m.PublishHook()))
//	caller, err := broker.NewCaller(conn, broker.WithCallHook(m.CallHook()))
//	mux.Use(m.Middleware())
//	pool, err := worker.NewPool(conn, topo, mux, worker.WithSender(snd), worker.WithObserver(m.Observe))
//
// The pool's retries, dead letters and replies are counted through the
// hook of its sender: give the pool one (worker.WithSender).
//
// Job types label several metrics. They come from the topology, whose
// routes bound them, but a producer can publish any type: give the
// topology's types with WithJobTypes, and any other type is labelled
// "other". Without it, the first WithMaxJobTypes types seen (100 by
// default) label themselves and the rest "other".
//
// Queue depths are not here: RabbitMQ's own Prometheus exporter has them
// (see docs/observability.md).
package metrics
