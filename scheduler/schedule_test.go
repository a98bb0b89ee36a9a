package scheduler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/warrenmq/warren/topology"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestScheduleProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Schedule
		want []string // substrings of the error
	}{
		{"no name", Schedule{Every: time.Second, Type: "t"}, []string{"Name is empty"}},
		{"no type", Schedule{Name: "a", Every: time.Second}, []string{"Type is empty"}},
		{"neither", Schedule{Name: "a", Type: "t"}, []string{"neither Cron nor Every"}},
		{"both", Schedule{Name: "a", Type: "t", Cron: "* * * * *", Every: time.Minute}, []string{"both Cron and Every"}},
		{"bad cron", Schedule{Name: "a", Type: "t", Cron: "61 * * * *"}, []string{`cron "61 * * * *"`, "five fields"}},
		{"too many fields", Schedule{Name: "a", Type: "t", Cron: "* * * * * * *"}, []string{"cron"}},
		{"tz in cron", Schedule{Name: "a", Type: "t", Cron: "CRON_TZ=Europe/Paris 0 3 * * *"}, []string{"set the time zone apart"}},
		{"@every", Schedule{Name: "a", Type: "t", Cron: "@every 1m"}, []string{"use an interval"}},
		{"bad zone", Schedule{Name: "a", Type: "t", Cron: "@daily", TimeZone: "Mars/Olympus"}, []string{`time zone "Mars/Olympus" is unknown`}},
		{"local zone", Schedule{Name: "a", Type: "t", Cron: "@daily", TimeZone: "Local"}, []string{`time zone "Local" is unknown`}},
		{"short every", Schedule{Name: "a", Type: "t", Every: 500 * time.Millisecond}, []string{"at least 1s"}},
		{"fractional every", Schedule{Name: "a", Type: "t", Every: 1500 * time.Millisecond}, []string{"whole seconds"}},
		{"negative catch-up", Schedule{Name: "a", Type: "t", Every: time.Second, CatchUp: -time.Second}, []string{"CatchUp"}},
		{"every problem at once", Schedule{Cron: "x", TimeZone: "Nowhere"}, []string{"Name is empty", "Type is empty", "Nowhere", `cron "x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate([]Schedule{tc.s})
			if err == nil {
				t.Fatal("no error")
			}
			var se *ScheduleError
			if !errors.As(err, &se) {
				t.Fatalf("%v is not a *ScheduleError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("duplicate names", func(t *testing.T) {
		s := Schedule{Name: "a", Type: "t", Every: time.Second}
		err := Validate([]Schedule{s, s})
		if err == nil || !strings.Contains(err.Error(), "used twice") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("valid", func(t *testing.T) {
		err := Validate([]Schedule{
			{Name: "a", Type: "t", Every: time.Hour},
			{Name: "b", Type: "t", Cron: "30 2 * * *", TimeZone: "America/New_York", CatchUp: time.Hour},
			{Name: "c", Type: "t", Cron: "*/10 * * * * *"},
			{Name: "d", Type: "t", Cron: "@weekly"},
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestNext(t *testing.T) {
	utc := func(s string) time.Time { return mustTime(t, s) }
	for _, tc := range []struct {
		name  string
		s     Schedule
		after string
		want  []string // RFC 3339 in UTC
	}{
		{"every aligned to the epoch", Schedule{Every: 90 * time.Minute},
			"2026-03-01T00:10:00Z", []string{"2026-03-01T01:30:00Z", "2026-03-01T03:00:00Z", "2026-03-01T04:30:00Z"}},
		{"every, on a tick, gives the next", Schedule{Every: time.Second},
			"2026-03-01T00:00:00Z", []string{"2026-03-01T00:00:01Z", "2026-03-01T00:00:02Z"}},
		{"cron in UTC", Schedule{Cron: "0 3 * * *"},
			"2026-03-01T03:00:00Z", []string{"2026-03-02T03:00:00Z", "2026-03-03T03:00:00Z"}},
		{"cron with seconds", Schedule{Cron: "*/20 * * * * *"},
			"2026-03-01T00:00:05Z", []string{"2026-03-01T00:00:20Z", "2026-03-01T00:00:40Z", "2026-03-01T00:01:00Z"}},
		{"cron in a zone", Schedule{Cron: "0 9 * * 1-5", TimeZone: "Europe/Paris"},
			"2026-01-09T12:00:00Z", []string{"2026-01-12T08:00:00Z", "2026-01-13T08:00:00Z"}},
		// A tick is an instant at which the zone's wall clock shows a
		// time the expression matches. New York springs forward on
		// 2026-03-08 (02:00 EST becomes 03:00 EDT): 02:30 is never shown
		// that day, so there is no tick that day.
		{"DST: the skipped hour", Schedule{Cron: "30 2 * * *", TimeZone: "America/New_York"},
			"2026-03-07T12:00:00Z", []string{"2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"}},
		// ...and falls back on 2026-11-01: 01:30 is shown twice (EDT,
		// then EST), an hour apart: two ticks, with two job ids.
		{"DST: the repeated hour", Schedule{Cron: "30 1 * * *", TimeZone: "America/New_York"},
			"2026-10-31T12:00:00Z", []string{"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"}},
		{"DST: hourly through the fall-back", Schedule{Cron: "0 * * * *", TimeZone: "America/New_York"},
			"2026-11-01T04:30:00Z", []string{"2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}},
		{"never", Schedule{Cron: "0 0 30 2 *"}, "2026-01-01T00:00:00Z", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.Name, tc.s.Type = "s", "t"
			got, err := tc.s.Next(utc(tc.after), len(tc.want)+boolInt(tc.want == nil))
			if err != nil {
				t.Fatal(err)
			}
			var gotS []string
			for _, g := range got {
				gotS = append(gotS, g.UTC().Format(time.RFC3339))
			}
			if d := cmp.Diff(tc.want, gotS); d != "" {
				t.Errorf("next (-want +got):\n%s", d)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestDue(t *testing.T) {
	at := func(s string) time.Time { return mustTime(t, "2026-03-01T00:"+s+"Z") }
	for _, tc := range []struct {
		name      string
		catchUp   time.Duration
		mark, now string
		fire      []string
		skipped   int
		wantMark  string
	}{
		{"nothing due yet", 0, "00:00", "00:00.9", nil, 0, "00:00"},
		{"on time", 0, "00:00", "00:01.001", []string{"00:01"}, 0, "00:01"},
		{"late within the tolerance", 0, "00:00", "00:01.999", []string{"00:01"}, 0, "00:01"},
		{"skip: older ticks skipped", 0, "00:00", "00:05.5", []string{"00:05"}, 4, "00:05"},
		{"skip: none fired when all are too old", 0, "00:00", "00:06.5", []string{"00:06"}, 5, "00:06"},
		{"catch up within the window", 10 * time.Second, "00:00", "00:05.5", []string{"00:01", "00:02", "00:03", "00:04", "00:05"}, 0, "00:05"},
		{"catch up: older than the window skipped", 3 * time.Second, "00:00", "00:05.5", []string{"00:03", "00:04", "00:05"}, 2, "00:05"},
		{"the window's edge is in", 3 * time.Second, "00:00", "00:05", []string{"00:02", "00:03", "00:04", "00:05"}, 1, "00:05"},
		{"mark between ticks", 10 * time.Second, "00:02.5", "00:04.1", []string{"00:03", "00:04"}, 0, "00:04"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := compile(Schedule{Name: "s", Type: "t", Every: time.Second, CatchUp: tc.catchUp})
			if err != nil {
				t.Fatal(err)
			}
			fire, skipped, mark := p.due(at(tc.mark), at(tc.now))
			var got []string
			for _, f := range fire {
				got = append(got, f.UTC().Format("04:05.999"))
			}
			if d := cmp.Diff(tc.fire, got); d != "" {
				t.Errorf("fired (-want +got):\n%s", d)
			}
			if skipped != tc.skipped {
				t.Errorf("skipped %d, want %d", skipped, tc.skipped)
			}
			if !mark.Equal(at(tc.wantMark)) {
				t.Errorf("watermark %s, want %s", mark.UTC().Format("04:05.999"), tc.wantMark)
			}
		})
	}
	t.Run("a long outage is skipped without counting forever", func(t *testing.T) {
		p, _ := compile(Schedule{Name: "s", Type: "t", Every: time.Second})
		now := mustTime(t, "2026-03-01T00:00:00.5Z")
		fire, skipped, mark := p.due(now.AddDate(-1, 0, 0), now)
		if len(fire) != 1 || !fire[0].Equal(now.Truncate(time.Second)) || skipped != maxCounted || !mark.Equal(fire[0]) {
			t.Errorf("fired %v, skipped %d, watermark %v", fire, skipped, mark)
		}
	})
}

func TestJobID(t *testing.T) {
	tick := mustTime(t, "2026-03-01T03:00:00Z")
	a := JobID("nightly", tick)
	if b := JobID("nightly", tick.In(time.FixedZone("X", 3600))); a != b {
		t.Errorf("the id depends on the time zone the tick is read in: %s, %s", a, b)
	}
	if JobID("nightly", tick.Add(time.Second)) == a || JobID("nightly2", tick) == a {
		t.Error("different ticks or schedules share an id")
	}
	if u, err := uuid.Parse(a); err != nil || u.Version() != 5 {
		t.Errorf("id %q is not a UUIDv5 (%v)", a, err)
	}
}

func TestStateMerge(t *testing.T) {
	t1 := mustTime(t, "2026-03-01T00:00:01Z")
	t2 := mustTime(t, "2026-03-01T00:00:02Z")
	a := state{"x": t1, "y": t2}
	b := state{"x": t2, "z": t1}
	got := a.merge(b)
	want := state{"x": t2, "y": t2, "z": t1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("merge (-want +got):\n%s", d)
	}
	if !got.covers(a) || !got.covers(b) || a.covers(got) || !a.covers(state{}) || state(nil).covers(a) {
		t.Error("covers is wrong")
	}
	if a["x"] != t1 {
		t.Error("merge changed its receiver")
	}
}

func TestTokenRoundTrip(t *testing.T) {
	st := state{"x": mustTime(t, "2026-03-01T00:00:01.5Z"), "y": mustTime(t, "2026-03-01T00:00:02Z")}
	env, err := newEnvelopeForTest(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readToken(env)
	if err != nil {
		t.Fatal(err)
	}
	if !got.covers(st) || !st.covers(got) {
		t.Errorf("got %v, want %v", got, st)
	}
	env.Type = "other"
	if _, err := readToken(env); err == nil {
		t.Error("a message of another type was read as a token")
	}
}

func TestFromTopology(t *testing.T) {
	top, err := topology.Parse("t.yaml", []byte(`version: 1
exchanges:
  jobs: {type: direct}
queues:
  reports: {}
bindings:
  - {exchange: jobs, queue: reports, routing_key: report.build}
routes:
  report.build: {exchange: jobs}
schedules:
  nightly: {cron: "30 2 * * *", time_zone: America/New_York, type: report.build, catch_up: 2h, payload: {kind: daily}}
  often: {every: 10s, type: report.build}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := FromTopology(top)
	want := []Schedule{
		{Name: "nightly", Cron: "30 2 * * *", TimeZone: "America/New_York", Type: "report.build", Exchange: "jobs", RoutingKey: "report.build",
			Payload: map[string]any{"kind": "daily"}, CatchUp: 2 * time.Hour},
		{Name: "often", Every: 10 * time.Second, Type: "report.build", Exchange: "jobs", RoutingKey: "report.build"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("schedules (-want +got):\n%s", d)
	}
	// Every schedule the file accepts, the scheduler accepts.
	if err := Validate(got); err != nil {
		t.Error(err)
	}
}
