// Package rabbitnode starts private RabbitMQ nodes for tests that need
// broker-wide faults: killing or restarting the broker, stopping its
// application, closing every connection, raising a memory or disk alarm,
// losing the leader of a quorum queue. None of these may touch the broker
// shared by every test run at 127.0.0.1:5672 (see internal/brokertest).
//
// rabbitnode is test scaffolding, never imported by product code; it
// manages its own nodes only.
//
// Start runs rabbitmq-server as a child of the test with its own node name,
// free ports, data, logs, configuration, enabled-plugins file and Erlang
// cookie, in a directory under $WARREN_NODES_DIR (default
// /tmp/warren-nodes/go). A node starts in about five seconds; t.Cleanup
// kills it and removes its directory, and the kernel kills it too if the
// test binary dies first (a parent-death signal), so no node outlives
// `go test`. StartCluster joins such nodes into one cluster, where quorum
// queues have a member on each node.
//
// When the tests run as root the nodes run as the rabbitmq user (which
// owns their directory), as the distribution's packages do; otherwise as
// the current user. rabbitmqctl is run the same way, with the node's
// directory as HOME so that it finds the node's cookie.
//
// When rabbitmq-server is missing or a node cannot start, the test fails
// (never skips) with what to install or fix and the end of the node's log.
//
// WithTLS adds an amqps listener; Certs makes the certificates with
// scripts/tls-ca.sh, the script developers use by hand.
//
// WithVersion("4.3"), or WARREN_RABBITMQ_VERSION=4.3 for every node the
// tests start, runs a RabbitMQ 4.x node instead of the machine's
// rabbitmq-server: from a Debian root filesystem that
// scripts/rabbitmq4.sh builds once (4.0 from trixie, 4.3 from forky), in a
// chroot and a mount namespace of its own, with its own epmd. Every method
// works the same for it; Version says what a node runs.
package rabbitnode
