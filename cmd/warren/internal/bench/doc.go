// Package bench is warren's end-to-end benchmark: the same workload run
// through warren (broker.Publisher and worker.Pool) and through plain
// amqp091-go code, measured by one harness so the two can be compared.
//
// The workload (DESIGN.md §11): Config.Jobs persistent jobs of about
// Config.PayloadBytes of MessagePack each, published with pipelined publisher
// confirms (at most PublishWindow outstanding, mandatory) into a fresh,
// uniquely named durable queue, and consumed at the same time on a second
// connection with manual acks, prefetch Config.Prefetch and
// Config.Concurrency handler goroutines that decode each payload and record
// its publish-to-handler latency. A run ends when every job was handled and
// acked. With Config.Queues, the jobs go round-robin to several queues of
// one exchange, each consumed with that prefetch and concurrency; with
// Config.Workers, worker processes of the benchmark's own executable
// consume instead of the run's process (ServeWorker), and the run adds
// their CPU time and allocations to its own and reports the largest one's
// peak RSS.
//
// Measure runs one implementation (a Runner) and returns its Result: jobs per
// second end to end, publish and consume rates, client CPU seconds per 10k
// jobs, peak RSS, and the median and 99th percentile latency. Run runs one
// implementation: warren, or one of the Baselines of the mode. The ModeJobs
// baselines are the two consumers a careful user writes by hand:
// ImplBaseline acks each delivery as it is handled; ImplBaselineBatched
// hands each finished delivery tag to one acker goroutine, which acks the
// contiguous finished tags with multiple=true in batches (batchAcker).
//
// With Config.Mode set to ModeRPC, the workload is request-reply over direct
// reply-to instead: a server consuming a fresh queue (manual acks, prefetch
// Config.Prefetch, Config.Concurrency handlers) answers Config.Calls calls of
// about Config.PayloadBytes each, made by Config.Callers goroutines on one
// connection, each waiting for its reply. MeasureCalls runs one
// implementation (a CallRunner); its CallRecorder makes and times the calls,
// the same way for all, and the Result has calls per second, client CPU
// seconds per 10k calls, allocations per call, peak RSS and the p50/p99
// latency of a call. Run picks the workload by mode. The ModeRPC baselines
// send transient requests, as hand-written clients do: ImplBaseline over
// direct reply-to, ImplBaselineQueue with a reply queue of its own.
//
// NewReport compares warren's medians with each baseline's (Ratio) and
// judges the targets against one: ImplBaselineBatched in ModeJobs, the
// baseline with more calls per second in ModeRPC.
//
// A run creates its own queues and exchange, named "bench.<impl>.<type>.<random>"
// (and ".<i>" for each of several queues), and deletes them at the end; it never deletes the shared entities warren
// derives (warren.*). It uses the whole machine: run one at a time.
//
// bench is the one package outside broker that imports amqp091-go: its
// baselines (baseline.go, baseline_rpc.go) are the plain client, measured
// against warren. It is used only by warren bench; nothing in warren's own
// packages imports it.
package bench
