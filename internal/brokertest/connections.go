package brokertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// CloseConnections makes the broker close, as an operator would, the
// connections whose client-given name is name (broker.WithName): only a
// test's own connections, never the shared broker's others. It waits up to
// 10s for at least one to be listed (the management API lists a new
// connection after a moment) and returns how many it closed.
func CloseConnections(t testing.TB, name string) int {
	t.Helper()
	return closeConnections(t, name, 10*time.Second, true)
}

// CloseConnectionsIfAny is CloseConnections for a process that may have no
// connection at the moment: one between two lives (killed, not yet
// restarted) or waiting to reconnect after a close. It waits up to 2s for
// one to be listed, and returns 0 when none is.
func CloseConnectionsIfAny(t testing.TB, name string) int {
	t.Helper()
	return closeConnections(t, name, 2*time.Second, false)
}

func closeConnections(t testing.TB, name string, wait time.Duration, must bool) int {
	t.Helper()
	base, err := url.Parse(ManagementURL(t))
	if err != nil {
		t.Fatalf("brokertest: management URL: %v", err)
	}
	user := base.User
	base.User = nil
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	do := func(method, path string) (*http.Response, error) {
		req, err := http.NewRequest(method, strings.TrimSuffix(base.String(), "/")+path, nil)
		if err != nil {
			return nil, err
		}
		pw, _ := user.Password()
		req.SetBasicAuth(user.Username(), pw)
		req.Header.Set("X-Reason", "warren test: connection closed on purpose")
		return client.Do(req)
	}
	deadline := time.Now().Add(wait)
	for {
		resp, err := do(http.MethodGet, "/api/connections?columns=name,client_properties")
		if err != nil {
			t.Fatalf("brokertest: list connections (is the management plugin enabled? rabbitmq-plugins enable rabbitmq_management): %v", err)
		}
		var conns []struct {
			Name             string `json:"name"`
			ClientProperties struct {
				ConnectionName string `json:"connection_name"`
			} `json:"client_properties"`
		}
		err = json.NewDecoder(resp.Body).Decode(&conns)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("brokertest: list connections: %v", err)
		}
		closed := 0
		for _, c := range conns {
			if c.ClientProperties.ConnectionName != name {
				continue
			}
			resp, err := do(http.MethodDelete, "/api/connections/"+url.PathEscape(c.Name))
			if err != nil {
				t.Fatalf("brokertest: close connection %q: %v", c.Name, err)
			}
			resp.Body.Close()
			// A connection closed a moment ago may still be listed, and
			// then fails to close (404, or 500 on RabbitMQ 3.10): skip it.
			if resp.StatusCode/100 == 2 {
				closed++
			}
		}
		if closed > 0 {
			return closed
		}
		if time.Now().After(deadline) {
			if !must {
				return 0
			}
			t.Fatalf("brokertest: no connection named %q listed by the broker after %s", name, wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ConnName is a unique connection name for the test.
func ConnName(t testing.TB, what string) string {
	return fmt.Sprintf("%s-%d", Name(t, what), time.Now().UnixNano())
}
