package dashboard

import (
	"fmt"
	"html"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

func TestWorkersPage(t *testing.T) {
	q := brokertest.Queue(t, "work", nil)
	name := brokertest.ConnName(t, "worker")
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	conn, err := amqp.DialConfig(brokertest.URL(t), amqp.Config{Properties: props})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume(q, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// A connection of warren's: its client properties say what it is.
	wname := brokertest.ConnName(t, "warren-worker")
	host, _ := os.Hostname()
	wc, err := broker.Dial(brokertest.Context(t, time.Minute), []string{brokertest.URL(t)}, broker.WithName(wname),
		broker.WithClientProperty("queues", q), broker.WithClientProperty("concurrency", 12))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wc.Close() })
	wantProps := []string{"host: " + host, fmt.Sprintf("pid: %d", os.Getpid()), "queues: " + q, "concurrency: 12", "warren " + broker.Version()}

	srv := newTestServer(t, Options{})
	deadline := time.Now().Add(20 * time.Second) // the API lists a connection within a few seconds
	for {
		resp, body := get(t, srv.URL+"/workers", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /workers: %s\n%s", resp.Status, body)
		}
		i := strings.Index(body, name)
		j := strings.Index(body, wname)
		if i >= 0 && j >= 0 && strings.Contains(body[i:], `href="/queues/`+q+`"`) && strings.Contains(body, "<h1>Workers</h1>") {
			row := body[j:]
			if k := strings.Index(row, "</tr>"); k >= 0 {
				row = row[:k]
			}
			for _, p := range wantProps {
				if !strings.Contains(row, html.EscapeString(p)) {
					t.Errorf("the row of %s lacks %q:\n%s", wname, p, row)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workers page does not show connection %s consuming %s:\n%s", name, q, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
