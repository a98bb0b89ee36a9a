// Command warren applies topologies, publishes jobs and inspects queues on
// RabbitMQ. Run `warren --help` for the commands.
//
// The command is thin: it parses flags and environment (the same --url and
// WARREN_URL as the daemon), calls the packages (broker, topology,
// deadletter, daemon) and prints what they return, adding to their errors
// the flag or command to use (advice.go). How jobs travel and are
// settled is the packages' business, and the command imports no AMQP
// client; what only it uses,
// the benchmark harness and the management-API client, lives in
// cmd/warren/internal.
package main
