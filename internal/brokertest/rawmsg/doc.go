// Package rawmsg moves broker.Messages with amqp091-go alone, for tests
// that must put a message on a queue (or read one) exactly as another
// client would, without warren's publisher or consumer in the way.
//
// rawmsg is test scaffolding, never imported by product code.
//
// It lives apart from brokertest because it imports broker, whose own
// tests import brokertest.
package rawmsg
