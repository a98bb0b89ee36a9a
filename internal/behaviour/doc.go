// Package behaviour is the shared behaviour suite: scenarios of what warren
// relies on a broker for — confirms, acks, retries through the delay
// cascade, dead letters, request-reply, prefetch, redelivery, purge and
// passive declares, TTLs, scheduled jobs — written once against a small
// Target, and run against both the in-process emulation (internal/amqpmem,
// which warrentest is built on) and the real RabbitMQ broker, so that the
// two cannot drift apart.
//
// Each scenario keeps a ledger of the jobs it published and fails on a job
// that is lost (neither handled nor dead-lettered), handled successfully
// twice, or that it never published.
//
// behaviour is test scaffolding, never imported by product code.
package behaviour
