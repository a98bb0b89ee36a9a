// Package mgmt is a small client of RabbitMQ's management HTTP API
// (the rabbitmq_management plugin): the exchanges, queues and bindings of
// one virtual host, with their arguments and the queues' message counts and
// rates. warren's CLI uses it where AMQP cannot see: a passive declare
// tells whether an entity exists, but not its arguments, nor the bindings.
// PeekMessages reads messages of a queue without taking them (the delay
// cascade's, for warren stats --by-origin).
//
// New takes the API's base URL; URLFromAMQP derives it from a broker URL
// on the standard port (same host and credentials, port 15672 over http,
// or 15671 over https for amqps; a broker on another port is another node,
// whose management URL must be given: ErrUnknownURL), and VhostFromAMQP
// the virtual host. Live converts what the API
// returns into topology types for topology.Plan.
//
// Errors are prefixed "mgmt: " and say what to do. ErrUnreachable is
// returned when nothing answers at the URL; a *StatusError carries any
// other refusal (wrong credentials, unknown virtual host). Passwords never
// appear in them.
//
// mgmt speaks HTTP to the management API and never AMQP: it imports
// neither broker nor amqp091-go, and returns topology types. It is used
// only by the CLI.
package mgmt
