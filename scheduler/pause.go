package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

// pausedPrefix names the marker queues of paused schedules; distinct from
// broker.PausedMarker's "warren.paused.", so a schedule and a queue of the
// same name are paused apart.
const pausedPrefix = "warren.paused-schedule."

// PausedMarker is the queue whose existence says the schedule is paused:
// warren.paused-schedule.NAME, a durable quorum queue that holds nothing,
// kept by the broker across restarts and node losses as the queues'
// markers are (broker.PausedMarker).
func PausedMarker(schedule string) string { return pausedPrefix + schedule }

// SetPaused pauses or resumes a schedule for every scheduler. A paused
// schedule's ticks are skipped, not fired later: the leader reads the
// marker before each tick (at most PauseRecheck old).
func SetPaused(ctx context.Context, conn *broker.Conn, schedule string, paused bool) error {
	if schedule == "" {
		return errors.New("scheduler: SetPaused: empty schedule name")
	}
	if n := len(PausedMarker(schedule)); n > 255 {
		return fmt.Errorf("scheduler: pause %q: the marker queue's name would be %d bytes, over AMQP's 255; shorten the schedule's name", schedule, n)
	}
	d := broker.NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	if paused {
		if err := d.DeclareQueue(ctx, markerQueue(schedule)); err != nil {
			return fmt.Errorf("scheduler: pause %q: %w", schedule, err)
		}
		return nil
	}
	if _, err := d.DeleteQueue(ctx, PausedMarker(schedule), false); err != nil && !errors.Is(err, broker.ErrNoQueue) {
		return fmt.Errorf("scheduler: resume %q: %w", schedule, err)
	}
	return nil
}

func markerQueue(schedule string) topology.Queue {
	return topology.Queue{Name: PausedMarker(schedule), Type: topology.Quorum, Durable: true, Args: topology.Table{"x-queue-type": topology.Quorum}}
}

// IsPaused reports whether the schedule is paused.
func IsPaused(ctx context.Context, conn *broker.Conn, schedule string) (bool, error) {
	d := broker.NewDeclarer(conn)
	defer d.Close(context.WithoutCancel(ctx))
	ok, err := d.QueueExists(ctx, PausedMarker(schedule))
	if err != nil {
		return false, fmt.Errorf("scheduler: is %q paused: %w", schedule, err)
	}
	return ok, nil
}
