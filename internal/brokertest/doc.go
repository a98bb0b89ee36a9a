// Package brokertest finds a RabbitMQ broker for tests and gives them unique
// names and cleanup.
//
// The broker is found, once per test binary, in this order: the AMQP_URL
// environment variable; the local default amqp://guest:guest@127.0.0.1:5672/
// if it answers; a RabbitMQ container started with dockertest when Docker is
// available. Otherwise the tests fail (never skip) with a message that says
// how to start a broker.
//
// The broker is shared by every test run on the machine: tests use unique
// names, clean up after themselves, and never restart it or raise alarms on
// it.
//
// brokertest is test scaffolding, never imported by product code. It
// imports amqp091-go but not broker: broker's own in-package tests use it.
package brokertest
