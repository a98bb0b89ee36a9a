package bench

import "fmt"

// queueNames returns the names of a run's n queues, made from the run's
// unique name: the name itself for one queue, "<name>.<i>" for several.
func queueNames(name string, n int) []string {
	if n <= 1 {
		return []string{name}
	}
	qs := make([]string, n)
	for i := range qs {
		qs[i] = fmt.Sprintf("%s.%d", name, i)
	}
	return qs
}

// routingKeys returns the routing keys, and job types, of a run's n
// queues: JobType for one queue, "<JobType>.<i>" for several. Queue i is
// bound with key i, and the publishers go round-robin over them.
func routingKeys(n int) []string {
	if n <= 1 {
		return []string{JobType}
	}
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s.%d", JobType, i)
	}
	return ks
}
