package scheduler

import "github.com/warrenmq/warren/topology"

// FromTopology returns the schedules a topology file declares
// (schedules:), each with its target resolved by the file.
func FromTopology(t *topology.Topology) []Schedule {
	out := make([]Schedule, len(t.Schedules))
	for i, s := range t.Schedules {
		out[i] = Schedule{
			Name:       s.Name,
			Cron:       s.Cron,
			Every:      s.Every,
			TimeZone:   s.TimeZone,
			Type:       s.JobType,
			Exchange:   s.Exchange,
			RoutingKey: s.RoutingKey,
			Payload:    s.Payload,
			CatchUp:    s.CatchUp,
		}
	}
	return out
}
