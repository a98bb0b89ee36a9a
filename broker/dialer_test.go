package broker_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/amqpmem"
)

// TestWithDialerConnectsThroughIt: the dial function is what connects,
// given the URL's host and port; no socket is opened.
func TestWithDialerConnectsThroughIt(t *testing.T) {
	mem := amqpmem.New()
	defer mem.Close()
	var addrs []string
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		addrs = append(addrs, addr)
		return mem.Dial(ctx, network, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{"amqp://guest:guest@nowhere.invalid:5672/"}, broker.WithDialer(dial))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	if len(addrs) != 1 || addrs[0] != "nowhere.invalid:5672" {
		t.Errorf("dialled %v, want [nowhere.invalid:5672]", addrs)
	}
	if conn.State() != broker.Connected {
		t.Errorf("state %v", conn.State())
	}
}

func TestWithDialerNilIsRefused(t *testing.T) {
	_, err := broker.Dial(context.Background(), []string{broker.DefaultURL}, broker.WithDialer(nil))
	if err == nil || !strings.Contains(err.Error(), "WithDialer") {
		t.Fatalf("got %v, want an error naming WithDialer", err)
	}
}
