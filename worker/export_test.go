package worker

// SetQueueGoneCheck replaces the check that decides, after the broker
// cancelled a consumer, whether its queue is gone: tests use it to play
// the order RabbitMQ 4 shows with a quorum queue, where the cancel arrives
// while the queue still answers a passive declare and a consume sent just
// after finds it gone.
func SetQueueGoneCheck(p *Pool, gone func() bool) { p.queueGoneCheck = gone }

// QueueRate returns the rate, in jobs per second, that q's rate limit lets
// jobs start at in p now (a GlobalRateLimit's share); 0 for none.
func QueueRate(p *Pool, queue string) float64 {
	for _, q := range p.queues {
		if q.queue.Name == queue && q.limit != nil {
			p.limitMu.Lock()
			defer p.limitMu.Unlock()
			return float64(q.limit.lim.Limit())
		}
	}
	return 0
}
