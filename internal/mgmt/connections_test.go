package mgmt

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConsumersDecodesEmptyChannelDetails(t *testing.T) {
	srv, paths := fake(t, 200, `[{"consumer_tag":"a","queue":{"name":"q1"},"channel_details":{"name":"ch 1","connection_name":"conn 1"}},
		{"consumer_tag":"b","queue":{"name":"q2"},"channel_details":[]}]`)
	c := newClient(t, strings.Replace(srv.URL, "http://", "http://ada:pw@", 1), "/")
	got, err := c.Consumers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ChannelDetail.ConnectionName != "conn 1" || got[1].ChannelDetail != (ChannelDetails{}) || got[1].Queue.Name != "q2" {
		t.Errorf("Consumers = %+v", got)
	}
	if diff := cmp.Diff([]string{"/api/consumers/%2F"}, *paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

func TestQueueCountsDecodes(t *testing.T) {
	srv, paths := fake(t, 200, `[{"name":"q","messages":3,"message_stats":{"publish_details":{"rate":1.5}}}]`)
	c := newClient(t, strings.Replace(srv.URL, "http://", "http://ada:pw@", 1), "/")
	got, err := c.QueueCounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Messages != 3 || got[0].MessageStats.PublishDetails.Rate != 1.5 {
		t.Errorf("QueueCounts = %+v", got)
	}
	// The dashboard's tests check the columns= query against the broker.
	if diff := cmp.Diff([]string{"/api/queues/%2F"}, *paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}
