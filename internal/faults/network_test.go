//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/rabbitnode"
)

// heartbeat is the interval run.dial asks for.
const heartbeat = 2 * time.Second

// TestNetworkBlackhole: mid-run, the link between the clients and the node
// goes silent both ways (no RST, no FIN: packets just stop arriving), for
// several heartbeat intervals. Only heartbeats can tell: the clients must
// notice by themselves, reconnect once the link is back, and lose nothing
// confirmed. A connection attempted into the blackhole ends at its dial
// timeout.
func TestNetworkBlackhole(t *testing.T) {
	n := rabbitnode.Start(t)
	p := startProxy(t, n.URL())
	r := newRun(t, []string{p.url}, "classic")
	stop := r.work(nil)
	produced := r.produce(jobs, producers)
	r.after(jobs / 4)
	before := reconnects(r)

	start := time.Now()
	p.blackhole(t)
	t.Logf("blackhole on, %d of %d jobs confirmed so far", r.ledger.total(), jobs)
	noticed := awaitState(t, r, broker.Disconnected, 5*heartbeat)
	t.Logf("both connections noticed the blackhole after %v (heartbeat %v)", noticed.Round(100*time.Millisecond), heartbeat)

	// A new connection into the blackhole: TCP connects (to the proxy),
	// the AMQP handshake gets no answer; the dial timeout ends it.
	const dialTimeout = 2 * time.Second
	dialStart := time.Now()
	conn, err := broker.Dial(context.Background(), []string{p.url}, broker.WithName("faults-blackhole-probe"),
		broker.WithHeartbeat(heartbeat), broker.WithDialTimeout(dialTimeout), broker.WithLogger(r.log))
	took := time.Since(dialStart)
	if err == nil {
		conn.Close()
		t.Errorf("Dial into the blackhole succeeded")
	} else if took > dialTimeout+3*time.Second {
		t.Errorf("Dial into the blackhole took %v with a dial timeout of %v", took, dialTimeout)
	} else {
		t.Logf("Dial into the blackhole failed after %v: %v", took.Round(100*time.Millisecond), err)
	}

	// Hold it for 8s in all, and at least two intervals past the notice,
	// so that reconnection attempts meet the blackhole too.
	time.Sleep(max(time.Until(start.Add(8*time.Second)), time.Until(start.Add(noticed+2*heartbeat))))
	p.restore(t)
	t.Logf("blackhole off after %v", time.Since(start).Round(100*time.Millisecond))
	back := awaitReconnected(t, r, before, 30*time.Second)
	t.Logf("both connections back %v after the link", back.Round(100*time.Millisecond))
	r.finish(produced, stop)
}

// TestNetworkReset: mid-run, every connection through the proxy is reset
// (RST on both sides), twice; the clients reconnect and lose nothing
// confirmed.
func TestNetworkReset(t *testing.T) {
	n := rabbitnode.Start(t)
	p := startProxy(t, n.URL())
	r := newRun(t, []string{p.url}, "classic")
	stop := r.work(nil)
	produced := r.produce(jobs, producers)
	for i, at := range []int64{jobs / 4, jobs / 2} {
		r.after(at)
		before := reconnects(r)
		t.Logf("reset %d: %d of %d jobs confirmed so far", i+1, r.ledger.total(), jobs)
		p.setReset(t, true)
		noticed := awaitState(t, r, broker.Disconnected, 5*heartbeat)
		p.setReset(t, false)
		back := awaitReconnected(t, r, before, 30*time.Second)
		t.Logf("reset %d: both connections lost after %v, back %v later", i+1,
			noticed.Round(10*time.Millisecond), back.Round(10*time.Millisecond))
	}
	r.finish(produced, stop)
}

// netProxy is a toxiproxy proxy run in the test process, on 127.0.0.1,
// between the clients and a node.
type netProxy struct {
	proxy *toxiproxy.Proxy
	url   string // the node's URL, with the proxy's address
}

// The toxics a netProxy keeps on every link from the start: resets that
// never fire (toxicity 0). A link only gets SO_LINGER 0 (so that its close
// is an RST) when a reset_peer toxic is there as it starts; setReset adds
// the ones that fire.
var resetToxics = []string{"reset_upstream", "reset_downstream"}

// startProxy starts a proxy to the node at nodeURL; it stops when the test
// ends, before the node does.
func startProxy(t *testing.T, nodeURL string) *netProxy {
	t.Helper()
	u, err := url.Parse(nodeURL)
	if err != nil {
		t.Fatal(err)
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(server, "amqp", "127.0.0.1:0", u.Host)
	if err := server.Collection.Add(proxy, true); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(func() {
		// Toxics first: a held link ends only when its toxic goes.
		proxy.Toxics.ResetToxics(context.Background())
		proxy.Stop()
	})
	for _, name := range resetToxics {
		stream := strings.TrimPrefix(name, "reset_")
		addToxic(t, proxy, fmt.Sprintf(`{"name": %q, "type": "reset_peer", "stream": %q, "toxicity": 0, "attributes": {"timeout": 0}}`, name, stream))
	}
	u.Host = proxy.Listen
	return &netProxy{proxy: proxy, url: u.String()}
}

func addToxic(t *testing.T, proxy *toxiproxy.Proxy, spec string) {
	t.Helper()
	if _, err := proxy.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
		t.Fatalf("toxiproxy: add toxic %s: %v", spec, err)
	}
}

// blackhole silences the link both ways, for the connections open and
// those made until restore.
func (p *netProxy) blackhole(t *testing.T) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		addToxic(t, p.proxy, fmt.Sprintf(`{"name": "blackhole_%s", "type": %q, "stream": %q}`, stream, blackholeType, stream))
	}
}

// restore ends the blackhole: the connections it held are closed, with an
// RST since every link has SO_LINGER 0 (see resetToxics), as a stateful
// firewall that forgot them would answer; new ones go through.
func (p *netProxy) restore(t *testing.T) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		if err := p.proxy.Toxics.RemoveToxic(context.Background(), "blackhole_"+stream); err != nil {
			t.Fatalf("toxiproxy: remove blackhole: %v", err)
		}
	}
}

// setReset arms (every link is reset with an RST on both sides at its next
// byte, new ones included) or disarms the resets. It adds and removes
// toxics of its own rather than changing the dormant ones' toxicity:
// toxiproxy reads a toxic's toxicity without a lock as each new link starts,
// so updating it races with clients reconnecting (TestNetProxyReset).
func (p *netProxy) setReset(t *testing.T, on bool) {
	t.Helper()
	for _, name := range resetToxics {
		armed := name + "_armed"
		if on {
			stream := strings.TrimPrefix(name, "reset_")
			addToxic(t, p.proxy, fmt.Sprintf(`{"name": %q, "type": "reset_peer", "stream": %q, "toxicity": 1, "attributes": {"timeout": 0}}`, armed, stream))
			continue
		}
		if err := p.proxy.Toxics.RemoveToxic(context.Background(), armed); err != nil {
			t.Fatalf("toxiproxy: remove %s: %v", armed, err)
		}
	}
}

// blackholeType is a toxic that swallows everything, the end of the stream
// included. toxiproxy's own timeout toxic (timeout 0) drops the data but
// passes on a close: when the broker's heartbeat gives up first, the client
// would be told by a FIN, not by its own heartbeat. Removing the toxic
// closes the links it held.
const blackholeType = "warren_blackhole"

type blackholeToxic struct{}

func init() { toxics.Register(blackholeType, new(blackholeToxic)) }

func (*blackholeToxic) Pipe(stub *toxics.ToxicStub) {
	in := stub.Input
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-in:
			if c == nil {
				in = nil // closed: hold that too
			}
		}
	}
}

func (*blackholeToxic) Cleanup(stub *toxics.ToxicStub) { stub.Close() }

// reconnects is how many times the run's two connections reconnected.
func reconnects(r *run) [2]uint64 {
	return [2]uint64{r.pubConn.Reconnects(), r.workConn.Reconnects()}
}

// awaitState waits until both of the run's connections are in state s, and
// says how long that took.
func awaitState(t *testing.T, r *run, s broker.State, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for r.pubConn.State() != s || r.workConn.State() != s {
		if time.Since(start) > limit {
			t.Fatalf("after %v: producer connection %v, worker connection %v; want both %v",
				limit, r.pubConn.State(), r.workConn.State(), s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// awaitReconnected waits until both connections reconnected since before
// and are connected, and says how long that took.
func awaitReconnected(t *testing.T, r *run, before [2]uint64, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		now := reconnects(r)
		if now[0] > before[0] && now[1] > before[1] &&
			r.pubConn.State() == broker.Connected && r.workConn.State() == broker.Connected {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("after %v: producer connection %v (%d reconnects), worker connection %v (%d reconnects)",
				limit, r.pubConn.State(), now[0]-before[0], r.workConn.State(), now[1]-before[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
