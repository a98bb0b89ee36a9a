package broker

import (
	"context"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// closeChannel closes ch gracefully (channel.close, waiting for the
// broker's close-ok) until ctx ends; what refers to ch names it, in the
// error. A channel already closed is no error. When ctx ends first, the
// close goes on in the background and ends with the connection at the
// latest.
func closeChannel(ctx context.Context, ch *amqp.Channel, what string) error {
	errc := make(chan error, 1) // buffered: the close may outlive ctx
	go func() { errc <- ch.Close() }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("broker: close %s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker: close %s: %w", what, ctx.Err())
	}
}
