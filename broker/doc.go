// Package broker is warren's only door to RabbitMQ (AMQP 0-9-1): it dials
// connections, declares topology, publishes jobs with publisher confirms,
// and defines the job envelope — the wire format every producer and worker
// shares.
//
// What broker owns, and no other package does: the connections to RabbitMQ
// and every channel on them, publisher confirms and returns, the wire
// format of a job, and the consuming primitives (Consume, and a Delivery's
// Ack, Requeue and Reject). It is the only one of warren's packages that
// imports amqp091-go (apart from the CLI's benchmark, whose baseline is the
// plain client), and no amqp091-go type appears in its API. It decides
// nothing about a job's fate: retries, dead letters and the quarantine are
// the worker's policy, which it carries out through a Sender and a
// Delivery. Of warren's packages it imports only topology (the delay
// routes, and the Declarer interface it implements): worker, deadletter,
// daemon, metrics and tracing build on broker, never the other way round.
//
// # Connections and publishing
//
// Dial connects to the first of a list of broker URLs that answers.
// A Publisher sends jobs on a connection and returns nil only once the
// broker has confirmed them; an unroutable job is ErrUnroutable, a refused
// one ErrNacked, and a job whose outcome is unknown (the channel or
// connection closed first) ErrClosed: publish it again with the same id.
// Publish and PublishBatch take options for where a job goes (To, ToQueue)
// and when it is due (At, In); a bad option is an error, never a panic.
// A Caller sends a request and waits for its reply.
//
// A Sender passes along jobs that already exist — a worker's retries, dead
// letters and replies, the dead-letter tools' replays and imports — each
// with its exchange, routing key and kind named. Publisher, Sender and
// Caller share one pipeline: routing, observers, the exchange check and the
// frame-size check are the same for all three.
// A Declarer declares exchanges, queues and bindings for the topology
// package.
//
// # The envelope
//
// A Job is what a producer publishes: an id, a type, a payload and
// optional headers, priority and request-reply fields. NewEnvelope
// validates it, gives it an id (a UUIDv7) when it has none, and encodes the
// payload with MessagePack; Envelope.Message turns the Envelope into the
// AMQP message, a Message. On the consuming side, Message.Envelope (which a
// Consumer applies to every delivery) reads the Envelope back from the
// properties and headers, and Envelope.Decode decodes the body into the
// handler's payload type.
//
// No type of the AMQP client appears in this package's API: a Message
// carries its headers as a Table, whose values are Go types warren defines
// (Table, Decimal) or standard ones, and Table's JSON form keeps each
// value's AMQP field type, for files that carry messages exactly.
//
// Metadata travels in AMQP properties (message_id, type, timestamp, …) and
// in headers named warren-* — never x-*, which RabbitMQ treats as its own —
// so tools can read a job without decoding its body; the body is the
// MessagePack payload alone. docs/wire-format.md specifies the format for
// producers in other languages, and testdata/wire holds conformance
// vectors that the tests check in both directions.
//
// A job can also carry the CloudEvents binary-mode attributes
// (cloudEvents_id, _type, _source, _time, …), written from its own
// properties by AsCloudEvent or WithCloudEvents and read by CloudEventOf;
// a message CloudEvents tooling published with only those attributes is
// read as a job of its CloudEvents type.
//
// # Hostile bodies
//
// The MessagePack decoder trusts the lengths a body declares and recurses
// without a depth limit: a 5-byte body can make it allocate gigabytes, and
// deeply nested arrays overflow its stack, which kills the process.
// CheckBody validates a body in one iterative pass (declared lengths,
// nesting depth, size) before any decoding, and Decode always calls it.
// Messages that cannot be read give errors wrapping ErrUnsupportedContentType,
// ErrMissingType, ErrMalformedEnvelope, ErrBadBody or ErrBodyTooLarge:
// they can never succeed and belong in a dead-letter queue.
package broker
