// Package metrics exports Prometheus metrics of warren's own work:
// publishes and their confirms, jobs processed by outcome, handler
// durations, jobs in flight, replies, calls, reconnections, periodic jobs
// and the transactional outbox's relays (an outbox.Observer).
//
// metrics only watches: it counts what broker and worker tell it, and
// never publishes, settles or changes a job; it imports no AMQP client.
// Serving its collectors is the daemon's (or the program's) job.
//
// Nothing is registered globally: New registers its collectors on the
// prometheus.Registerer it is given, under the namespace "warren". The
// Metrics it returns is a broker.Observer and a worker.Observer: give it
// to broker.Dial, once per connection, and everything built on the
// connection is counted — publishers, senders, callers, and the worker
// pools, which use it without being told:
//
//	m, err := metrics.New(reg, metrics.WithJobTypes(topo.JobTypes()...))
//	conn, err := broker.Dial(ctx, urls, broker.WithName("consumer"), broker.WithObserver(m))
//
// The pool's retries, dead letters and replies are counted by the
// observers of its sender's connection (worker.WithSender): dial that one
// with the Metrics too. Reconnections are labelled with the connection's
// name (broker.WithName) as their role: keep the names a small fixed set.
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
