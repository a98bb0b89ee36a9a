package brokertest

import (
	"strings"
	"testing"
)

func TestManagementURL(t *testing.T) {
	for _, tc := range []struct {
		amqp, mapped string
		want         string
		wantErr      []string
	}{
		{amqp: "amqp://guest:guest@127.0.0.1:5672/", want: "http://guest:guest@127.0.0.1:15672"},
		{amqp: "amqp://ada:pw@rabbit.internal/", want: "http://ada:pw@rabbit.internal:15672"},
		{amqp: "amqp://127.0.0.1", want: "http://guest:guest@127.0.0.1:15672"},
		{amqp: "amqp://guest:guest@127.0.0.1:32771/", mapped: "32772", want: "http://guest:guest@127.0.0.1:32772"},
		// Another node: not the API on 15672, which is the shared broker's.
		{amqp: "amqp://guest:hunter2@127.0.0.1:5643/", wantErr: []string{"port 5643", "MANAGEMENT_URL"}},
	} {
		got, err := managementURL(tc.amqp, tc.mapped)
		if len(tc.wantErr) == 0 {
			if err != nil || got != tc.want {
				t.Errorf("managementURL(%q, %q) = %q, %v; want %q", tc.amqp, tc.mapped, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("managementURL(%q) = %q, want an error", tc.amqp, got)
			continue
		}
		for _, w := range tc.wantErr {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("managementURL(%q): %v does not say %q", tc.amqp, err, w)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
