// Package workflow builds chains of jobs: steps that run one after
// another, each on the result of the one before, with compensations that
// undo the steps done when a later one fails for good. It is a routing
// slip: the chain travels with its jobs, in their headers, and needs no
// store and no coordinator.
//
//	c, err := workflow.NewChain(
//		workflow.Step{Type: "trip.authorise", Payload: req,
//			Compensate: &workflow.Step{Type: "trip.release-authorisation"}},
//		workflow.Step{Type: "driver.reserve",
//			Compensate: &workflow.Step{Type: "driver.release"}},
//		workflow.Step{Type: "card.charge"},
//	)
//	id, err := c.Publish(ctx, pub)
//
// The first step is published as any job. The worker pool that settles a
// step (package worker, with no option: every pool continues chains)
// publishes what comes next before it acks the step:
//
//   - when the step succeeded, the next step, whose payload is the step's
//     result (Job.SetResult, or worker.TypedResult's) unless it has a
//     payload of its own, in which case the result is its Input;
//   - when the step failed for good (dead-lettered), the compensation of
//     the last step done before it; each compensation, once it succeeded,
//     publishes the one before, newest first. A compensation's payload is
//     its own, else the result of the step it undoes; Failure tells it
//     which step failed and why.
//
// Every step and compensation is a job with its type's retry policy. A
// compensation that fails for good is parked in its dead-letter queue with
// the rest of the compensations in its slip: replayed once its cause is
// fixed, it runs and goes on. A step whose next step has no route is
// parked with class worker.ClassChain (its own effects done), to replay
// once the topology routes it.
//
// Delivery is at least once, so a step can run twice; its next step is
// then published twice, with the same job id (derived from the chain's id
// and the step's place), which an idempotent consumer (package inbox)
// runs once. docs/workflows.md has the guarantees in full.
package workflow
