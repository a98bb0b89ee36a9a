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
// acked.
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
// the same way for both, and the Result has calls per second, client CPU
// seconds per 10k calls, allocations per call, peak RSS and the p50/p99
// latency of a call. Run picks the workload by mode.
//
// A run creates its own queue and exchange, named "bench.<impl>.<type>.<random>",
// and deletes them at the end; it never deletes the shared entities warren
// derives (warren.*). It uses the whole machine: run one at a time.
//
// bench is the one package outside broker that imports amqp091-go: its
// baseline (baseline.go, baseline_rpc.go) is the plain client, measured
// against warren. It is used only by warren bench; nothing in warren's own
// packages imports it.
package bench
