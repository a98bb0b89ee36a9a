package deadletter

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
)

func entry(id, typ, class, errText string, failed time.Time) Entry {
	return Entry{Envelope: &broker.Envelope{ID: id, Type: typ}, Class: class, Error: errText, LastFailed: failed}
}

func TestFilterMatch(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	e := entry("j1", "email.send", "permanent", "smtp: 550 no such user\nmore", now.Add(-2*time.Hour))
	re := func(s string) *Filter {
		p, err := ErrorPattern(s)
		if err != nil {
			t.Fatal(err)
		}
		return &Filter{Error: p}
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want bool
	}{
		{"zero", Filter{}, true},
		{"type", Filter{Types: []string{"sms.send", "email.send"}}, true},
		{"other type", Filter{Types: []string{"sms.send"}}, false},
		{"class", Filter{Classes: []string{"permanent"}}, true},
		{"id", Filter{IDs: []string{"j2"}}, false},
		{"regexp", *re(`55\d`), true},
		{"substring that is no regexp", *re(`550 no such user\n(`), false},
		{"substring", *re(`no such`), true},
		{"older than 1h", Filter{OlderThan: time.Hour}, true},
		{"older than 3h", Filter{OlderThan: 3 * time.Hour}, false},
		{"newer than 3h", Filter{NewerThan: 3 * time.Hour}, true},
		{"newer than 1h", Filter{NewerThan: time.Hour}, false},
		{"all", Filter{Types: []string{"email.send"}, Classes: []string{"permanent"}, NewerThan: 3 * time.Hour}, true},
	} {
		if got := tc.f.Match(e, now); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.name, got, tc.want)
		}
	}
	if (Filter{OlderThan: time.Second}).Match(entry("j", "t", "", "", time.Time{}), now) {
		t.Error("an entry without a failure time matched an age filter")
	}
}

func TestGrouper(t *testing.T) {
	if _, err := NewGrouper("colour"); err == nil {
		t.Error("grouping by an unknown key succeeded")
	}
	g, err := NewGrouper(ByError)
	if err != nil {
		t.Fatal(err)
	}
	g.Add(entry("1", "a", "error", "timeout\nstack", time.Time{}))
	g.Add(entry("2", "b", "error", "timeout\nother stack", time.Time{}))
	g.Add(entry("3", "a", "permanent", "bad input", time.Time{}))
	groups := g.Groups()
	if len(groups) != 2 || groups[0].Key != "timeout" || groups[0].Count != 2 || len(groups[0].Types) != 2 || groups[1].Key != "bad input" {
		t.Errorf("groups %+v", groups)
	}
}

func TestEntryFromRabbitMQDeath(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	d := &broker.Delivery{Envelope: &broker.Envelope{ID: "j", Type: "t", Headers: map[string]any{
		"x-death": []any{map[string]any{"reason": "expired", "queue": "default", "exchange": "jobs", "routing-keys": []any{"t"}, "count": int64(1), "time": at}},
	}}}
	e := NewEntry(d)
	if e.By != "rabbitmq" || e.Class != "rabbitmq:expired" || e.Origin != (broker.Origin{Exchange: "jobs", RoutingKey: "t", Queue: "default"}) || !e.LastFailed.Equal(at) {
		t.Errorf("%+v", e)
	}
	d.Err = errors.New("bad header")
	d.Envelope.Headers = nil
	if e := NewEntry(d); e.Class != "malformed" {
		t.Errorf("malformed: %+v", e)
	}
}
