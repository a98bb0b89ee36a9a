package topology

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// The delay cascade holds retried and scheduled jobs in the broker, without a
// plugin, for any whole number of seconds up to MaxDelay (about 8.5 years).
// It is NServiceBus's "delayed delivery v2", which Celery 5.5 adopted.
//
// Level N (27 down to 0) is a topic exchange and a queue, both named
// DelayExchangeName(N). The queue holds messages for 2^N seconds (its
// x-message-ttl), then dead-letters them, routing key unchanged, to level
// N-1's exchange; level 0's queue dead-letters to DelayDeliverExchange. The
// routing key spells the delay in binary, one word per level, bit 27 first,
// followed by the destination queue's name:
//
//	5s to "emails": 0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.emails
//
// Level N's exchange looks at word 27-N: a "1" goes into level N's queue to
// wait, a "0" goes straight on to level N-1. DelayDeliverExchange routes on
// the words after the bits to the work queue of that name, and hands
// anything else to DelayUnroutable (an exchange and a queue), so that nothing
// that reaches the end of the cascade is lost.
//
// Publishing to the level of the highest bit set skips the empty levels
// above it; DelayRoute computes the exchange and the routing key.

// Names warren derives. The file may not declare or refer to names starting
// with ReservedPrefix.
const (
	ReservedPrefix = "warren."
	// DeadLetterExchange is the direct exchange that routes each work
	// queue's dead letters, by the queue's name, to its dead-letter queue.
	DeadLetterExchange = "warren.dead-letter"
	// DelayDeliverExchange is the end of the delay cascade: it routes each
	// delayed message to the work queue named in its routing key.
	DelayDeliverExchange = "warren.delay.deliver"
	// DelayUnroutable names the fanout exchange, and the queue bound to it,
	// that keep what DelayDeliverExchange cannot route.
	DelayUnroutable = "warren.delay.unroutable"
	// DelayLevels is the number of levels of the delay cascade.
	DelayLevels = 28
	// MaxDelay is the longest delay the cascade holds: 2^28-1 seconds.
	MaxDelay = (1<<DelayLevels - 1) * time.Second
)

// ErrDelayTooLong is returned by DelayRoute for a delay over MaxDelay.
var ErrDelayTooLong = errors.New("topology: delay is longer than MaxDelay (2^28-1 seconds)")

// DeadLetterQueueName returns the name of the dead-letter queue warren
// derives for a work queue.
func DeadLetterQueueName(queue string) string { return queue + ".dlq" }

// QuarantineQueueName returns the name of the quarantine queue warren
// derives for a work queue.
func QuarantineQueueName(queue string) string { return queue + ".quarantine" }

// DelayExchangeName returns the name of the delay cascade's exchange for a
// level from 0 to DelayLevels-1, e.g. "warren.delay.05". Each level's queue
// has the same name.
func DelayExchangeName(level int) string { return fmt.Sprintf("warren.delay.%02d", level) }

// DelayRoute returns where to publish a message so that it reaches queue
// after delay d, rounded up to whole seconds. A delay of zero or less goes
// straight to DelayDeliverExchange. A delay over MaxDelay returns an error
// wrapping ErrDelayTooLong.
//
// The message reaches the queue only if the queue is a work queue of a
// declared topology: others end in DelayUnroutable.
func DelayRoute(queue string, d time.Duration) (exchange, routingKey string, err error) {
	if queue == "" {
		return "", "", errors.New("topology: delay route: queue name is empty")
	}
	if d > MaxDelay {
		return "", "", fmt.Errorf("%w: %s to queue %q", ErrDelayTooLong, d, queue)
	}
	var secs uint64
	if d > 0 {
		secs = uint64((d + time.Second - 1) / time.Second)
	}
	key := delayKey(secs, queue)
	if secs == 0 {
		return DelayDeliverExchange, key, nil
	}
	return DelayExchangeName(bits.Len64(secs) - 1), key, nil
}

// delayKey spells secs in DelayLevels binary words, most significant first,
// followed by the queue name.
func delayKey(secs uint64, queue string) string {
	var b strings.Builder
	b.Grow(2*DelayLevels + len(queue))
	for level := DelayLevels - 1; level >= 0; level-- {
		if secs&(1<<level) != 0 {
			b.WriteString("1.")
		} else {
			b.WriteString("0.")
		}
	}
	b.WriteString(queue)
	return b.String()
}

// delayTarget returns where level's queue dead-letters to.
func delayTarget(level int) string {
	if level == 0 {
		return DelayDeliverExchange
	}
	return DelayExchangeName(level - 1)
}
