// Package deadletter is the operator's side of dead-letter queues: it
// lists the jobs parked there (by warren's workers, with reasons in
// warren's headers, or by RabbitMQ itself, with x-death), filters and
// groups them without removing any (Browse, Filter, Grouper), and replays,
// purges, exports and imports them (Replay, Purge, Export, Import).
//
// It works through broker alone and never imports amqp091-go: it reads
// with a broker.Consumer, moves messages with a broker.Sender and settles
// through broker.Delivery, a job leaving its queue only once its copy is
// confirmed. Why a job was dead-lettered is the worker's decision, read
// here from the headers the worker wrote; deadletter does not import
// worker.
package deadletter
