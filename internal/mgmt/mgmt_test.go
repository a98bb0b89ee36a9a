package mgmt

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrenmq/warren/internal/brokertest"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

func TestURLFromAMQP(t *testing.T) {
	cases := []struct {
		in, want, wantErr string
		wantIs            error
	}{
		{in: "amqp://guest:guest@127.0.0.1:5672/", want: "http://guest:guest@127.0.0.1:15672"},
		{in: "amqp://ada:s%40cret@rabbit.internal/prod", want: "http://ada:s%40cret@rabbit.internal:15672"},
		{in: "amqps://ada:pw@rabbit.example.com:5671/", want: "https://ada:pw@rabbit.example.com:15671"},
		{in: "amqp://[::1]:5672", want: "http://guest:guest@[::1]:15672"},
		{in: "amqp://", want: "http://guest:guest@localhost:15672"},
		{in: "amqps://h:5671", want: "https://guest:guest@h:15671"},
		// Another port is another node: 15672 would be the management
		// API of whatever broker has 5672, not this one's.
		{in: "amqp://u:hunter2@127.0.0.1:5801/", wantErr: "port 5801", wantIs: ErrUnknownURL},
		{in: "amqps://u:hunter2@h:5672/", wantErr: "port 5672", wantIs: ErrUnknownURL},
		{in: "http://x", wantErr: "want amqp:// or amqps://"},
		{in: "amqp://u:hunter2@host:port/", wantErr: "invalid broker URL"},
	}
	for _, c := range cases {
		got, err := URLFromAMQP(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("URLFromAMQP(%q) = %q, %v; want an error with %q and no password", c.in, got, err, c.wantErr)
			}
			if c.wantIs != nil && !errors.Is(err, c.wantIs) {
				t.Errorf("URLFromAMQP(%q): %v is not %v", c.in, err, c.wantIs)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("URLFromAMQP(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestVhostFromAMQP(t *testing.T) {
	cases := map[string]string{
		"amqp://h":            "/",
		"amqp://h/":           "/",
		"amqp://h/prod":       "prod",
		"amqp://h/%2F":        "/",
		"amqp://h/%2Fstaging": "/staging",
		"amqp://h/a%20b":      "a b",
	}
	for in, want := range cases {
		if got, err := VhostFromAMQP(in); err != nil || got != want {
			t.Errorf("VhostFromAMQP(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// fake serves canned answers and records the escaped paths asked for.
func fake(t *testing.T, status int, body string) (*httptest.Server, *[]string) {
	t.Helper()
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.EscapedPath())
		if u, p, ok := r.BasicAuth(); !ok || u != "ada" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"not_authorised","reason":"Login failed"}`))
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &paths
}

func newClient(t *testing.T, base, vhost string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, vhost, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestQueuesDecodesAndEncodesVhost(t *testing.T) {
	srv, paths := fake(t, 200, `[{"name":"emails","vhost":"/","type":"quorum","durable":true,"auto_delete":false,"exclusive":false,
		"arguments":{"x-message-ttl":60000,"x-queue-type":"quorum","x-ratio":0.5,"x-list":[1,"a"]},
		"messages":3,"messages_ready":2,"messages_unacknowledged":1,"consumers":4,"policy":null,
		"message_stats":{"publish":10,"publish_details":{"rate":1.5},"ack":7,"ack_details":{"rate":0.2}}}]`)
	u := strings.Replace(srv.URL, "http://", "http://ada:pw@", 1)
	for _, vhost := range []string{"", "/", "a/b c"} {
		c := newClient(t, u, vhost)
		qs, err := c.Queues(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := Queue{Name: "emails", Vhost: "/", Type: "quorum", Durable: true,
			Arguments: map[string]any{"x-message-ttl": int64(60000), "x-queue-type": "quorum", "x-ratio": 0.5, "x-list": []any{int64(1), "a"}},
			Messages:  3, MessagesReady: 2, MessagesUnacknowledged: 1, Consumers: 4,
			MessageStats: &MessageStats{Publish: 10, PublishDetails: &Rate{Rate: 1.5}, Ack: 7, AckDetails: &Rate{Rate: 0.2}}}
		if diff := cmp.Diff([]Queue{want}, qs); diff != "" {
			t.Errorf("Queues (-want +got):\n%s", diff)
		}
	}
	want := []string{"/api/queues/%2F", "/api/queues/%2F", "/api/queues/a%2Fb%20c"}
	if diff := cmp.Diff(want, *paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestCredentials(t *testing.T) {
	srv, _ := fake(t, 200, `[]`)
	// From the URL, else from WithCredentials, else guest/guest.
	if _, err := newClient(t, srv.URL, "/", WithCredentials("ada", "pw")).Exchanges(context.Background()); err != nil {
		t.Errorf("WithCredentials: %v", err)
	}
	withURL := strings.Replace(srv.URL, "http://", "http://ada:pw@", 1)
	if _, err := newClient(t, withURL, "/", WithCredentials("bob", "x")).Exchanges(context.Background()); err != nil {
		t.Errorf("credentials of the URL should win: %v", err)
	}
	_, err := newClient(t, strings.Replace(srv.URL, "http://", "http://ada:wrong-pw@", 1), "/").Exchanges(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || !strings.Contains(err.Error(), "Login failed") || !strings.Contains(err.Error(), "management tag") {
		t.Fatalf("wrong password: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-pw") {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	notFound, _ := fake(t, 404, `{"error":"Object Not Found","reason":"Not Found"}`)
	html, _ := fake(t, 200, `<html>hello</html>`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://ada:s3cret-pw@" + ln.Addr().String()
	ln.Close()

	cases := []struct {
		name, base string
		want       []string
		is         error
	}{
		{"unknown vhost", notFound.URL, []string{"404", `virtual host "prod"`}, nil},
		{"not the API", html.URL, []string{"not the management API's JSON"}, nil},
		{"nothing answers", closed, []string{"rabbitmq-plugins enable rabbitmq_management", "--management-url", "xxxxx"}, ErrUnreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.base
			if !strings.Contains(base, "@") {
				base = strings.Replace(base, "http://", "http://ada:pw@", 1)
			}
			_, err := newClient(t, base, "prod").Bindings(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "mgmt: ") || strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q: want the mgmt: prefix and no password", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %v", err, c.is)
			}
		})
	}

	// A context that ends is reported as such.
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := newClient(t, notFound.URL, "/").Queues(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ended context: %v", err)
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"amqp://h:5672", "http://", "http://u:hunter2@h:x/"} {
		_, err := New(u, "/")
		if err == nil || !strings.HasPrefix(err.Error(), "mgmt: ") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	c, err := New("http://ada:pw@h:15672/rabbitmq/", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != "http://ada:xxxxx@h:15672/rabbitmq" || c.Vhost() != "/" {
		t.Errorf("URL %q vhost %q", c.URL(), c.Vhost())
	}
}
