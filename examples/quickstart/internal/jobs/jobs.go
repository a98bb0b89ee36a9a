// Package jobs is the contract between the quickstart's producer and
// worker: the job types and their payloads.
//
// Payloads travel as MessagePack maps keyed by the fields' json names (the
// envelope uses a field's msgpack tag, else its json tag), so a producer in
// another language, or `warren publish --data '{"to":"ada@example.com"}'`,
// uses the same names.
package jobs

// Job types, as routed by the quickstart's topology.yaml.
const (
	EmailSend    = "email.send"
	ImageResize  = "image.resize"
	ReportRender = "report.render"
	// StatsRollup is the periodic job: the topology's schedule
	// stats-rollup publishes one every second.
	StatsRollup = "stats.rollup"
)

// Email is the payload of an email.send job.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// Resize is the payload of an image.resize job.
type Resize struct {
	URL   string `json:"url"`
	Width int    `json:"width"`
}

// Report is the payload of a report.render job. Month is "YYYY-MM".
type Report struct {
	Report string `json:"report"`
	Month  string `json:"month"`
}

// Rollup is the payload of a stats.rollup job, as the topology's schedule
// sets it: the span of time it sums up.
type Rollup struct {
	Window string `json:"window"`
}
