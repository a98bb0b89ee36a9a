package deadletter

import (
	"fmt"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
)

// TestBrowseBeyondOnePage reads a queue in pages of 3 (65,535 in
// production, the largest prefetch): a read of more than one page sees
// every message once, in order, and leaves the queue as it was; a read
// capped below the queue's count says so.
func TestBrowseBeyondOnePage(t *testing.T) {
	saved := pageSize
	pageSize = 3
	t.Cleanup(func() { pageSize = saved })

	q := brokertest.Queue(t, "browse-pages", nil)
	ch := brokertest.Channel(t)
	var want []string
	for i := range 8 {
		id := fmt.Sprintf("job-%d", i)
		want = append(want, id)
		if err := ch.Publish("", q, false, false, amqp.Publishing{MessageId: id, Type: "t", Body: []byte{0xc0}}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for brokertest.Depth(t, q) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx := brokertest.Context(t, time.Minute)
	conn, err := broker.Dial(ctx, []string{brokertest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	read := func(max int) ([]string, BrowseSummary) {
		t.Helper()
		var got []string
		s, err := BrowseWith(ctx, conn, q, BrowseOptions{Max: max}, func(e Entry) bool {
			got = append(got, e.Envelope.ID)
			return true
		})
		if err != nil {
			t.Fatalf("max %d: %v", max, err)
		}
		return got, s
	}
	for _, tc := range []struct {
		max    int
		want   []string
		capped bool
	}{
		{0, want, false},    // the default, 65,535: three pages
		{100, want, false},  // more than the queue holds
		{8, want, false},    // exactly the queue
		{5, want[:5], true}, // across a page boundary
		{3, want[:3], true}, // one page
	} {
		got, s := read(tc.max)
		if !slices.Equal(got, tc.want) || s.Seen != len(tc.want) || s.Total != len(want) || s.Capped != tc.capped {
			t.Errorf("max %d: read %v, summary %+v; want %v, total %d, capped %v", tc.max, got, s, tc.want, len(want), tc.capped)
		}
	}
	if d := brokertest.Depth(t, q); d != len(want) {
		t.Errorf("%d messages left, want %d", d, len(want))
	}
	if _, err := BrowseWith(ctx, conn, q, BrowseOptions{Max: -1}, func(Entry) bool { return true }); err == nil {
		t.Error("a negative Max is accepted")
	}
}
