package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/topology"
)

func TestApplyPublishOptions(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name  string
		opts  []PublishOption
		want  publishOptions
		delay time.Duration // of the result, from now
		err   string        // in the error; "" for none
	}{
		{name: "none", want: publishOptions{}},
		{name: "To", opts: []PublishOption{To("x", "k")},
			want: publishOptions{target: publishTarget{exchange: "x", key: "k", explicit: true}}},
		{name: "ToQueue", opts: []PublishOption{ToQueue("q")},
			want: publishOptions{target: publishTarget{key: "q", explicit: true}}},
		{name: "the last target wins", opts: []PublishOption{To("x", "k"), ToQueue("q")},
			want: publishOptions{target: publishTarget{key: "q", explicit: true}}},
		{name: "In", opts: []PublishOption{In(time.Minute)},
			want: publishOptions{delayed: true, in: time.Minute}, delay: time.Minute},
		{name: "In 0", opts: []PublishOption{In(0)},
			want: publishOptions{delayed: true}},
		{name: "At", opts: []PublishOption{At(now.Add(time.Hour))},
			want: publishOptions{delayed: true, at: now.Add(time.Hour)}, delay: time.Hour},
		{name: "At in the past: now", opts: []PublishOption{At(now.Add(-time.Hour))},
			want: publishOptions{delayed: true, at: now.Add(-time.Hour)}, delay: -time.Hour},
		{name: "ToQueue empty", opts: []PublishOption{ToQueue("")}, err: "queue name is empty"},
		{name: "In negative", opts: []PublishOption{In(-time.Second)}, err: "negative"},
		{name: "At zero", opts: []PublishOption{At(time.Time{})}, err: "zero"},
		{name: "At too far in the past", opts: []PublishOption{At(now.Add(-topology.MaxDelay - time.Minute))}, err: "in the past"},
		{name: "At and In", opts: []PublishOption{At(now), In(time.Second)}, err: "At and In"},
		{name: "In and At", opts: []PublishOption{In(time.Second), At(now)}, err: "At and In"},
		{name: "nil", opts: []PublishOption{nil}, err: "nil option"},
		{name: "Expire", opts: []PublishOption{Expire(90 * time.Second)}, want: publishOptions{expire: 90 * time.Second}},
		{name: "Expire under 1ms", opts: []PublishOption{Expire(time.Microsecond)}, err: "at least 1ms"},
		{name: "Expire and In", opts: []PublishOption{Expire(time.Minute), In(time.Second)}, err: "scheduled job cannot expire"},
		{name: "At and Expire", opts: []PublishOption{At(now), Expire(time.Minute)}, err: "scheduled job cannot expire"},
		{name: "UniqueKey", opts: []PublishOption{UniqueKey("order-42")}, want: publishOptions{uniqueKey: "order-42"}},
		{name: "UniqueKey empty", opts: []PublishOption{UniqueKey("")}, err: "UniqueKey"},
		{name: "UniqueKey too long", opts: []PublishOption{UniqueKey(strings.Repeat("k", MaxUniqueKey+1))}, err: "UniqueKey"},
		{name: "UniqueKey not UTF-8", opts: []PublishOption{UniqueKey("\xff")}, err: "UniqueKey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := applyPublishOptions(tt.opts)
			if tt.err != "" {
				if !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want ErrInvalidOption saying %q", err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "broker: ") {
					t.Errorf("error %q does not start with the package name", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(publishOptions{}, publishTarget{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			if d := got.delay(now); d != tt.delay {
				t.Errorf("delay %s, want %s", d, tt.delay)
			}
		})
	}
}

func TestExpiration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, ""}, {time.Millisecond, "1"}, {90 * time.Second, "90000"}, {1500 * time.Microsecond, "1"}} {
		o := publishOptions{expire: tt.d}
		if got := o.expiration(); got != tt.want {
			t.Errorf("expiration of %s = %q, want %q", tt.d, got, tt.want)
		}
	}
}

// TestMarkUniqueKey: the key goes in its header, in a map of the
// envelope's own (the producer's map is not written to).
func TestMarkUniqueKey(t *testing.T) {
	own := map[string]any{"tenant": "acme"}
	env, err := NewEnvelope(Job{Type: "charge", Headers: own})
	if err != nil {
		t.Fatal(err)
	}
	o, err := applyPublishOptions([]PublishOption{UniqueKey("order-42")})
	if err != nil {
		t.Fatal(err)
	}
	o.mark(env)
	want := map[string]any{"tenant": "acme", HeaderUniqueKey: "order-42"}
	if diff := cmp.Diff(want, env.Headers); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if _, ok := own[HeaderUniqueKey]; ok {
		t.Error("the producer's header map was written to")
	}
	msg := env.Message()
	back, err := msg.Envelope()
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Headers[HeaderUniqueKey]; got != "order-42" {
		t.Errorf("read back: %s = %v, want order-42", HeaderUniqueKey, got)
	}
}
