// Package warrentest lets users test their handlers and producers without
// a broker. New starts an in-process emulation of RabbitMQ and declares a
// topology on it; warren's own code — broker.Conn, Publisher, Caller,
// worker.Pool, retries through the delay cascade, dead-letter queues —
// then runs against it exactly as it runs against RabbitMQ: only the
// broker is replaced.
//
//	kit := warrentest.New(t, topo)
//	pub := kit.Publisher()
//	pub.Publish(ctx, broker.Job{Type: "email.send", Payload: email})
//	kit.Drain(ctx, mux)                       // handle everything, retries included
//	kit.RequireDeadLettered(t, "default", "email.send")
//
// Time: delays the broker holds — retries' backoff, scheduled jobs
// (broker.In, broker.At), x-message-ttl and per-message expirations — run
// on the kit's virtual clock, which moves only when Advance is called or
// when Drain finds nothing left to do but wait for one; so a job retried
// five times with exponential backoff drains in milliseconds. Handlers'
// own timeouts, contexts and everything else in the process run on real
// time.
//
// What is not emulated: persistence and broker restarts, clustering,
// memory and disk alarms (publishing is never blocked), max-length and
// overflow, x-expires, priorities, authentication, the management HTTP
// API (warren topology plan and the management-API parts of the CLI need
// a real broker), and RabbitMQ's dead-letter cycle detection. See
// docs/testing.md.
package warrentest
