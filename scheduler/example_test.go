package scheduler_test

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/scheduler"
)

// Two schedules fired from any number of replicas: whichever leads
// publishes each tick once.
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{"amqp://guest:guest@127.0.0.1:5672/"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	s, err := scheduler.New(conn, []scheduler.Schedule{
		{
			Name:     "nightly-report",
			Cron:     "0 3 * * *",
			TimeZone: "Europe/Paris",
			Type:     "report.build",
			// The default exchange: straight to the queue of that name.
			RoutingKey: "reports",
			Payload:    map[string]any{"kind": "daily"},
			CatchUp:    time.Hour, // a tick up to an hour late still runs
		},
	}, scheduler.WithLeaseQueue("example.scheduler"))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = s.Run // run it next to the workers: go s.Run(ctx), or daemon.Run(ctx, pool, s)
	next, _ := s.Schedules()[0].Next(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), 3)
	for _, t := range next {
		fmt.Println(t.Format(time.RFC3339))
	}
	// Output:
	// 2026-03-29T03:00:00+02:00
	// 2026-03-30T03:00:00+02:00
	// 2026-03-31T03:00:00+02:00
}

// A schedule that is wrong says what to change.
func ExampleValidate() {
	err := scheduler.Validate([]scheduler.Schedule{
		{Name: "cleanup", Cron: "0 25 * * *", Type: "cleanup"},
	})
	fmt.Println(err)
	// Output:
	// scheduler: schedule "cleanup": cron "0 25 * * *": end of range (25) above maximum (23): 25; write five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, @weekly, @monthly, @yearly
}

// Every replica derives the same id for a tick: consumers de-duplicate on
// it.
func ExampleJobID() {
	tick := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	fmt.Println(scheduler.JobID("nightly-report", tick) == scheduler.JobID("nightly-report", tick.In(time.FixedZone("CET", 3600))))
	// Output:
	// true
}
