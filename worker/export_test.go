package worker

// SetQueueGoneCheck replaces the check that decides, after the broker
// cancelled a consumer, whether its queue is gone: tests use it to play
// the order RabbitMQ 4 shows with a quorum queue, where the cancel arrives
// while the queue still answers a passive declare and a consume sent just
// after finds it gone.
func SetQueueGoneCheck(p *Pool, gone func() bool) { p.queueGoneCheck = gone }
