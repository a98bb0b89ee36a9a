//go:build torture

package torture_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
	"github.com/warrenmq/warren/topology"
)

// The replay child is this test binary run again with these variables
// set: it replays a dead-letter queue into another queue, slowly, until
// it is killed.
const (
	replayURLEnv   = "WARREN_TORTURE_REPLAY_URL"
	replayQueueEnv = "WARREN_TORTURE_REPLAY_QUEUE"
	replayToEnv    = "WARREN_TORTURE_REPLAY_TO"
)

// replayRate is the jobs a second the replay child moves: slow enough
// that the parent kills it mid-way.
const replayRate = 100

func init() {
	if os.Getenv(replayURLEnv) != "" {
		os.Exit(replayChild())
	}
}

// replayChild replays the dead-letter queue named in the environment into
// the queue named there, printing "started" once it runs.
func replayChild() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "torture replay:", err)
		return 1
	}
	ctx := context.Background()
	conn, err := broker.Dial(ctx, []string{os.Getenv(replayURLEnv)}, broker.WithName("torture-replay"))
	if err != nil {
		return fail(err)
	}
	pub, err := broker.NewSender(conn)
	if err != nil {
		return fail(err)
	}
	fmt.Println("started")
	_, err = deadletter.Replay(ctx, conn, pub, os.Getenv(replayQueueEnv), deadletter.ReplayOptions{
		To: deadletter.ToQueue(os.Getenv(replayToEnv)), Rate: replayRate,
	})
	if err != nil {
		return fail(err)
	}
	return 0
}

// replayResult is what a replay killed mid-way left.
type replayResult struct {
	Queue           string
	Before          int // jobs in the dead-letter queue before the replay
	Moved           int // found in the target afterwards
	Left            int // found in the dead-letter queue afterwards
	Both            int // in both: moved, and back in the queue (the kill came between the copy's confirm and the ack)
	Lost            []string
	KilledAfterMove int // jobs in the target when the kill came
}

// replayKilledMidway reads the parked jobs of the fullest dead-letter
// queue of the run into the ledger without removing them, replays that
// queue into a queue of its own in a child process, SIGKILLs the child
// mid-way, and checks that every job read before is in one of the two
// queues. It returns the dead-letter queue, so that readDeadLetters skips
// it.
func replayKilledMidway(t *testing.T, url string, p *plan, l *ledger) replayResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	conn, err := broker.Dial(ctx, []string{url}, broker.WithName("torture-replay-check"))
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	defer conn.Close()
	decl := broker.NewDeclarer(conn)
	defer decl.Close(ctx)

	var r replayResult
	for _, q := range p.Queues {
		info, err := decl.QueueInfo(ctx, topology.DeadLetterQueueName(q))
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if info.Messages > r.Before {
			r.Queue, r.Before = info.Name, info.Messages
		}
	}
	if r.Before == 0 {
		t.Logf("torture: no dead letters to replay")
		return r
	}

	// The ledger's record of the queue, read as an operator would.
	before := map[string]bool{}
	_, err = deadletter.Browse(ctx, conn, r.Queue, func(e deadletter.Entry) bool {
		env := e.Envelope
		pk := parked{Attempt: max(env.Attempt, 1), Crashes: env.Crashes}
		if env.Failure != nil {
			pk.Class = env.Failure.Class
		}
		before[env.ID] = true
		l.park(env.ID, pk) // a job parked twice is a duplicate, as in readDeadLetters
		return true
	})
	if err != nil {
		t.Fatalf("replay: browse %s: %v", r.Queue, err)
	}

	target := r.Queue + ".replayed"
	if err := decl.DeclareQueue(ctx, topology.Queue{Name: target, Type: topology.Classic, Durable: true, Args: topology.Table{"x-queue-type": topology.Classic}}); err != nil {
		t.Fatalf("replay: declare %s: %v", target, err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), replayURLEnv+"="+url, replayQueueEnv+"="+r.Queue, replayToEnv+"="+target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "started" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("replay: the child did not start:\n%s", stderr.String())
	}
	// Kill it once about a third has moved, as an operator's ^C or a
	// node's crash would.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		info, err := decl.QueueInfo(ctx, target)
		if err != nil {
			t.Fatalf("replay: %v", err)
		}
		if info.Messages >= max(r.Before/3, 1) {
			r.KilledAfterMove = info.Messages
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill() // SIGKILL: no acks sent, no channel closed
	cmd.Wait()
	if r.Before >= 3 && (r.KilledAfterMove == 0 || r.KilledAfterMove >= r.Before) {
		t.Errorf("replay: the kill came with %d of %d jobs moved, not mid-way:\n%s", r.KilledAfterMove, r.Before, stderr.String())
	}

	// Every job is in the dead-letter queue or in the target.
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	drain := func(q string) map[string]bool {
		ids := map[string]bool{}
		for {
			var d amqp.Delivery
			var ok bool
			// The killed child's unacked messages return to the queue
			// when the broker sees its connection close; wait for them.
			for range 100 {
				d, ok, err = ch.Get(q, true)
				if err != nil {
					t.Fatalf("replay: read %s: %v", q, err)
				}
				if ok {
					break
				}
				if info, err := decl.QueueInfo(ctx, q); err == nil && info.Consumers == 0 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !ok {
				return ids
			}
			ids[d.MessageId] = true
		}
	}
	time.Sleep(2 * time.Second) // the broker notices the dead connection
	left, moved := drain(r.Queue), drain(target)
	r.Left, r.Moved = len(left), len(moved)
	for id := range before {
		switch {
		case left[id] && moved[id]:
			r.Both++
		case !left[id] && !moved[id]:
			r.Lost = append(r.Lost, id)
		}
	}
	return r
}
