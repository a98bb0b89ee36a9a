// Package amqpmem is an in-process emulation of the parts of a RabbitMQ
// broker that warren uses, spoken over the AMQP 0-9-1 wire (net.Pipe), so
// that warren's unchanged client stack — broker.Conn, Publisher, Caller,
// worker.Pool, topology.Declare, deadletter — runs against it exactly as it
// runs against RabbitMQ. warrentest builds on it.
//
// What it emulates: the connection handshake and heartbeats; channels;
// publisher confirms (every routed or returned message is acked); direct,
// fanout, topic and headers exchanges, exchange-to-exchange bindings and
// alternate exchanges; queues (durable, exclusive, auto-delete,
// server-named), passive declares with message and consumer counts,
// purge and delete; basic.qos prefetch (per consumer, or per channel with
// global); consume and cancel (and the broker's cancel when a queue is
// deleted); mandatory publishing and basic.return; ack, nack and reject,
// multiple and requeue (a requeued message comes back marked redelivered);
// basic.get; dead-lettering (x-dead-letter-exchange and -routing-key, with
// x-death and x-first-death-* headers as RabbitMQ 3.x writes them) on
// reject, expiry and a quorum queue's x-delivery-limit; x-message-ttl and
// per-message expiration; direct reply-to (amq.rabbitmq.reply-to); and a
// lost or closed connection or channel returning its unacked messages.
//
// Time: message TTLs run on the broker's own virtual clock, which moves
// only when Advance is called, so a test decides when a delayed message
// comes due (warren's delay cascade is built of TTLs). Everything else —
// heartbeats, the client's timeouts — runs on real time.
//
// What it does not emulate: persistence and restarts, clustering,
// memory and disk alarms, max-length and overflow, x-expires, priorities,
// transactions, authentication (any user and password are accepted), the
// management HTTP API, and RabbitMQ's dead-letter cycle detection.
// Methods it does not implement close the channel with 540
// NOT_IMPLEMENTED rather than hang.
package amqpmem
