// Package topology reads warren's topology file and declares what it
// describes on a broker.
//
// What topology owns: the topology file, its checks, and the entities
// warren derives from it (dead-letter queues, quarantines, the delay
// cascade and its routes). It is plain data: it imports no other package
// of warren and no AMQP client, and reaches a broker only through the
// Declarer interface it defines, which broker.Declarer implements.
//
// A topology file (YAML; docs/topology.md is the reference) names the
// exchanges, queues and bindings of an AMQP 0-9-1 broker, and the route
// (exchange and routing key) of each job type. Load and Parse decode it
// strictly and check it as a whole: unknown keys, wrong types, invalid
// values, references to entities the file does not declare, settings the
// queue's type does not support, dead-letter cycles, routes no binding would
// route, names that collide with warren's own. They report every problem
// they find at once, as Problems, each located at file:line:col and most
// with a hint saying what to do:
//
//	topology.yaml:12:5: max_priority is for classic queues only, and queue "emails" is quorum
//		hint: remove max_priority, or make the queue classic (type: classic)
//
// A file larger than MaxFileSize, with more than MaxNodes YAML nodes,
// nested deeper than MaxDepth or with more than MaxEntities entries is
// refused with one problem naming the limit, before the YAML parser builds
// anything for the first two: no file can make loading take unbounded memory
// or time, and files with tens of thousands of queues load. At most 1,000
// problems are listed.
//
// A file that loads is resolved into a Topology: the file's entities with
// the exact AMQP arguments they are declared with, followed by the entities
// warren derives from them (all marked Derived):
//
//   - for each work queue (a queue the file declares), unless the file names
//     its own dead-letter exchange, a dead-letter queue "<queue>.dlq" bound
//     to the shared DeadLetterExchange with the queue's name as routing key;
//   - once, the delay cascade that holds retried and scheduled jobs in the
//     broker for any whole number of seconds up to MaxDelay: DelayLevels
//     levels of exchange and queue, DelayDeliverExchange at the end, and
//     DelayUnroutable to keep what cannot be delivered. DelayRoute says where
//     to publish a job to delay it.
//
// Declare declares a Topology through a Declarer, which the broker package
// implements, and reports what it created and what already existed.
//
// Nothing in this package talks to a broker by itself; it has no goroutines.
package topology
