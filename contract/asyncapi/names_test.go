package asyncapi

import (
	"testing"
	"time"
)

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{
		"trip.book":          "tripBook",
		"billing-charge_v2":  "billingChargeV2",
		"Trip.Saga.replies":  "tripSagaReplies",
		"amq.topic":          "amqTopic",
		"...":                "x",
		"été.réservé":        "tRServ", // keys are ASCII: other letters separate words,
		"a..b":               "aB",
		"trip.saga.replies.": "tripSagaReplies",
	} {
		if got := camel(in); got != want {
			t.Errorf("camel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	k := newKeys()
	for _, want := range []string{"tripBook", "tripBook2", "tripBook3"} {
		if got := k.take("tripBook"); got != want {
			t.Errorf("take = %q, want %q", got, want)
		}
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour:                     "1h",
		90 * time.Minute:              "1h30m",
		10 * time.Minute:              "10m",
		time.Second:                   "1s",
		200 * time.Millisecond:        "200ms",
		time.Hour + 30*time.Second:    "1h0m30s",
		2*time.Minute + time.Second/2: "2m0.5s",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}
