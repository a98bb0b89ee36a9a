package topology

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const scheduleBase = `version: 1
exchanges:
  jobs: {type: direct}
queues:
  reports: {}
bindings:
  - {exchange: jobs, queue: reports, routing_key: report.build}
routes:
  report.build: {exchange: jobs}
`

func TestSchedules(t *testing.T) {
	top, err := Parse("t.yaml", []byte(scheduleBase+`schedules:
  nightly:
    cron: "0 3 * * *"
    time_zone: Europe/Paris
    type: report.build
    payload: {kind: daily, pages: [1, 2]}
    catch_up: 1h
  heartbeat:
    every: 30s
    type: ping
    exchange: ""
    routing_key: reports
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Warnings) > 0 {
		t.Errorf("warnings: %v", top.Warnings)
	}
	want := []Schedule{
		{Name: "nightly", Cron: "0 3 * * *", TimeZone: "Europe/Paris", JobType: "report.build", Exchange: "jobs", RoutingKey: "report.build",
			Payload: map[string]any{"kind": "daily", "pages": []any{1, 2}}, CatchUp: time.Hour},
		{Name: "heartbeat", Every: 30 * time.Second, JobType: "ping", Exchange: "", RoutingKey: "reports"},
	}
	if d := cmp.Diff(want, top.Schedules, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Pos" }, cmp.Ignore())); d != "" {
		t.Errorf("schedules (-want +got):\n%s", d)
	}
	if top.Schedules[0].Pos.Line != 11 {
		t.Errorf("position %v", top.Schedules[0].Pos)
	}
}

func TestScheduleProblems(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"bad cron", "  s: {cron: \"0 25 * * *\", type: report.build}\n",
			[]string{`t.yaml:11:13: cron "0 25 * * *" is not a cron expression: end of range (25) above maximum (23): 25`}},
		{"cron names its zone", "  s: {cron: \"TZ=UTC 0 3 * * *\", type: report.build}\n",
			[]string{`t.yaml:11:13: cron "TZ=UTC 0 3 * * *" names its time zone; set it with time_zone: instead`}},
		{"unknown zone", "  s: {cron: \"@daily\", time_zone: Europe/Atlantis, type: report.build}\n",
			[]string{`t.yaml:11:34: time zone "Europe/Atlantis" is unknown`}},
		{"both", "  s: {cron: \"@daily\", every: 1h, type: report.build}\n",
			[]string{`t.yaml:11:30: schedule "s" has both cron and every`}},
		{"neither", "  s: {type: report.build}\n",
			[]string{`t.yaml:11:3: schedule "s" has no cron or every`}},
		{"short interval", "  s: {every: 500ms, type: report.build}\n",
			[]string{`t.yaml:11:14: every 500ms is not a whole number of seconds of at least 1s`}},
		{"no type", "  s: {every: 1m}\n",
			[]string{`t.yaml:11:3: schedule "s" has no type`}},
		{"type without a route", "  s: {every: 1m, type: report.other}\n",
			[]string{`t.yaml:11:24: job type "report.other" has no route`}},
		{"undeclared exchange", "  s: {every: 1m, type: x, exchange: nowhere, routing_key: k}\n",
			[]string{`t.yaml:11:37: exchange "nowhere" is not declared`}},
		{"default exchange to an undeclared queue", "  s: {every: 1m, type: x, exchange: \"\", routing_key: nowhere}\n",
			[]string{`t.yaml:11:54: queue "nowhere" is not declared`}},
		{"key without exchange", "  s: {every: 1m, type: x, routing_key: k}\n",
			[]string{`t.yaml:11:40: schedule "s" has a routing_key but no exchange`}},
		{"long catch-up", "  s: {every: 1m, type: report.build, catch_up: 30d}\n",
			[]string{`t.yaml:11:48: catch_up 30d is longer than 7d`}},
		{"unknown key", "  s: {every: 1m, type: report.build, catchup: 1h}\n",
			[]string{`t.yaml:11:38: unknown key "catchup" in schedule "s"`}},
		{"not a mapping", "  - every: 1m\n",
			[]string{`t.yaml:11:3: schedules must be a mapping from names to settings, not a list`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := brief(parseProblems(t, scheduleBase+"schedules:\n"+tc.file))
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
	t.Run("warning: time zone of an interval", func(t *testing.T) {
		top, err := Parse("t.yaml", []byte(scheduleBase+"schedules:\n  s: {every: 1m, time_zone: UTC, type: report.build}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(top.Warnings) != 1 || !strings.Contains(top.Warnings[0].Message, "time_zone has no effect") {
			t.Errorf("warnings: %v", top.Warnings)
		}
	})
}
