// Package saga runs orchestrated sagas persisted in PostgreSQL: a
// transaction across services as a sequence of steps, each a command sent
// to a service whose reply advances the saga; when a step fails for good or
// times out, the compensations of the steps that succeeded run, newest
// first, each a command awaiting its reply.
//
//	def, err := saga.Define("trip.book",
//		saga.Step[Trip]{Name: "reserve-car", Command: reserveCar, OnReply: carReserved, Compensate: releaseCar, Timeout: time.Minute},
//		saga.Step[Trip]{Name: "charge", Command: charge, Compensate: refund, Timeout: time.Minute},
//		saga.Step[Trip]{Name: "confirm", Command: confirm})
//	coord, err := saga.NewCoordinator(db, conn, topo, saga.WithReplyQueue("trip.saga.replies"))
//	err = coord.Register(def)
//	// in the service's own transaction:
//	err = saga.Start(ctx, tx, coord, def, tripID, Trip{...})
//
// What saga owns: the definitions (Define, validated), the tables
// warren_saga and warren_saga_steps (Migrate, warren saga migrate), and the
// Coordinator, a daemon.Service that consumes the replies from its durable
// reply queue, applies each in one transaction under the saga's row lock,
// times out steps, and runs an outbox relay for its commands.
//
// Every command is written through the outbox (package outbox) in the
// transaction of the state change that calls for it, with a fresh job id,
// the reply queue as reply_to and its id as correlation id: a saga starts
// if and only if the caller's transaction commits, and a state change and
// its command commit together. Commands are at least once, so step
// handlers must be idempotent (package inbox); a reply to a command that is
// not the saga's pending one (a duplicate, a late reply after a timeout)
// is ignored. See docs/workflows.md.
package saga
