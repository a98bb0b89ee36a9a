package logfield

// A job and where it travels.
const (
	Queue              = "queue"
	Exchange           = "exchange"
	RoutingKey         = "routing_key"
	JobID              = "job_id"
	JobType            = "job_type"
	JobVersion         = "job_version" // a job's contract version
	Attempt            = "attempt"     // a job's attempt, or a reconnection's
	CorrelationID      = "correlation_id"
	TraceID            = "trace_id"
	ReplyTo            = "reply_to"
	ErrorClass         = "error_class"
	DeadLetterExchange = "dead_letter_exchange"
	DeliveryCount      = "delivery_count"
	Crashes            = "crashes"
	CrashLimit         = "crash_limit"
	Duration           = "duration"
	Deadline           = "deadline"
	Verdict            = "verdict"    // what the worker decided for a delivery
	Schedule           = "schedule"   // a periodic job's schedule (package scheduler)
	Tick               = "tick"       // the time a schedule's job is for
	Ticks              = "ticks"      // how many ticks of a schedule
	CatchUp            = "catch_up"   // how late a schedule's missed tick may still be fired
	Consumer           = "consumer"   // an inbox's consumer (package inbox)
	UniqueKey          = "unique_key" // a unique job's key (package unique)
	Saga               = "saga"       // a saga's name (package saga)
	SagaID             = "saga_id"    // a saga instance's id (package saga)
	Step               = "step"       // a saga's step
)

// Connections.
const (
	URL        = "url" // always redacted (broker.RedactURL)
	Connection = "connection"
	Reconnects = "reconnects"
)

// Lifecycle.
const (
	RetryIn      = "retry_in"
	Reason       = "reason"
	Timeout      = "timeout"
	Waited       = "waited"
	Wait         = "wait"     // how long something will wait, e.g. a job for its rate limit
	Prefetch     = "prefetch" // a consumer's prefetch count
	Jobs         = "jobs"
	Queues       = "queues"
	Services     = "services"
	Addr         = "addr"
	Paths        = "paths" // the HTTP paths a daemon serves
	Signal       = "signal"
	Status       = "status"
	Component    = "component"
	CoolDown     = "cool_down"     // how long a circuit breaker stays open
	Failed       = "failed"        // jobs failed, e.g. in a circuit breaker's window
	From         = "from"          // the state a change came from
	ChainID      = "chain_id"      // the chain a job is a step of (package workflow)
	NextJobID    = "next_job_id"   // the job published after this one (a chain's next step)
	NextJobType  = "next_job_type" // its type
	Compensating = "compensating"  // whether a chain's job is a compensation
	Batch        = "batch_id"      // the batch a job is a member of (package batch)
	Succeeded    = "succeeded"     // jobs succeeded, e.g. of a batch
)
