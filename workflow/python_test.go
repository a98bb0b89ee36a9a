package workflow_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/queuetest"
	"github.com/warrenmq/warren/worker"
)

// startChainPy starts a chain from Python (py-amqp, msgpack): its first
// step a, then b with a payload of its own (a's result its input), then
// c, which fails; a compensated by undo-a on a's result. It writes the
// warren-chain table as docs/wire-format.md says, with py-amqp's types:
// dicts as tables, lists as arrays, bytes as it encodes them.
const startChainPy = `
import sys, amqp, msgpack
from urllib.parse import urlparse, unquote
url, exchange, chain_id = sys.argv[1], sys.argv[2], sys.argv[3]
u = urlparse(url)
vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
with amqp.Connection(host="%s:%d" % (u.hostname, u.port or 5672), userid=unquote(u.username),
                     password=unquote(u.password), virtual_host=vhost) as c:
    ch = c.channel()
    ch.confirm_select()
    slip = {
        "id": chain_id,
        "step": 0,
        "next": [
            {"type": "b", "payload": msgpack.packb("from python")},
            {"type": "c"},
        ],
        "compensate": {"type": "undo-a"},
    }
    msg = amqp.Message(msgpack.packb("py-start"), content_type="application/msgpack",
                       message_id=chain_id, type="a", delivery_mode=2,
                       application_headers={"warren-chain": slip})
    ch.basic_publish(msg, exchange=exchange, routing_key="a", mandatory=True)
`

// A chain started by a producer in another language runs as one started
// with NewChain: results flow, compensations run.
func TestChainStartedFromPython(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("/usr/bin/python3", "-c", "import amqp, msgpack").CombinedOutput()
	if err != nil {
		t.Fatalf("this test needs python3 with py-amqp and msgpack (%v: %s); install them with scripts/deps.sh", err, strings.TrimSpace(string(out)))
	}
	f := queuetest.New(t, "a", "b", "c", "undo-a")
	r := &recorder{fail: map[string]bool{"c": true}}
	start(t, f, r, "a", "b", "c", "undo-a")
	id := brokertest.JobID(t)
	cmd := exec.Command("/usr/bin/python3", "-c", startChainPy, brokertest.URL(t), f.Exchange, id)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Python producer: %v\n%s", err, out)
	}
	f.WaitCount(worker.Succeeded, 3, 30*time.Second)
	runs := r.get()
	if got := r.types(); strings.Join(got, ",") != "a,b,c,undo-a" {
		t.Fatalf("ran %v, want a, b, c, undo-a", got)
	}
	if runs[1].Payload != "from python" || runs[1].Input != "a(py-start)" {
		t.Errorf("b ran on payload %q, input %q; want its own payload and a's result as input", runs[1].Payload, runs[1].Input)
	}
	if runs[3].Payload != "a(py-start)" || runs[3].Info.ChainID != id || runs[3].Info.Failed == nil || runs[3].Info.Failed.Type != "c" {
		t.Errorf("undo-a ran on %q with %+v; want a's result, chain %s, c failed", runs[3].Payload, runs[3].Info, id)
	}
}
