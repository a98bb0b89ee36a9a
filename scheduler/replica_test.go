package scheduler_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/scheduler"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(brokertest.MainWithLeakCheck(m))
}

// childEnv makes the test binary a scheduler replica (see runChild).
const childEnv = "WARREN_SCHEDULER_TEST_CHILD"

// runChild runs one scheduler replica until SIGTERM: the schedule fires
// every second into the queue named by the environment, with a catch-up
// window; it prints "leading" and "standby" as its leadership changes.
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	conn, err := broker.Dial(ctx, []string{os.Getenv("AMQP_URL")}, broker.WithName("scheduler-replica"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		return 2
	}
	defer conn.Close()
	s, err := scheduler.New(conn, []scheduler.Schedule{{
		Name:       os.Getenv("SCHEDULE"),
		Every:      time.Second,
		Type:       "test.tick",
		RoutingKey: os.Getenv("TARGET"),
		Payload:    map[string]any{"hello": "world"},
		CatchUp:    30 * time.Second,
	}}, scheduler.WithLeaseQueue(os.Getenv("LEASE")), scheduler.WithObserver(printObserver{}), scheduler.WithRetryDelay(200*time.Millisecond))
	if err != nil {
		fmt.Fprintln(os.Stderr, "new:", err)
		return 2
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "run:", err)
		return 1
	}
	return 0
}

type printObserver struct{}

func (printObserver) SchedulerLeading(leading bool) {
	if leading {
		fmt.Println("leading")
	} else {
		fmt.Println("standby")
	}
}

func (printObserver) ScheduleTicks(string, scheduler.Outcome, int) {}

// replica is a scheduler in a process of its own.
type replica struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when its output is read to the end
	once sync.Once
}

// startReplica starts replica i; it sends i on leads each time the
// replica starts to lead. It is stopped at cleanup.
func startReplica(t *testing.T, i int, url, target, lease, name string, leads chan<- int) *replica {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "AMQP_URL="+url, "TARGET="+target, "LEASE="+lease, "SCHEDULE="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "leading" {
				leads <- i
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends the replica with SIGTERM (nothing if it is dead) and waits
// for it.
func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait()
}

func (r *replica) wait() {
	r.once.Do(func() {
		<-r.done
		_ = r.cmd.Wait()
	})
}

// waitLead returns the next replica to lead that is not one of not.
func waitLead(t *testing.T, leads <-chan int, not ...int) int {
	t.Helper()
	for {
		select {
		case i := <-leads:
			if !slices.Contains(not, i) {
				return i
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no replica leads")
		}
	}
}

// TestReplicasOneTickPerPeriod runs three schedulers as processes, kills
// the leader with SIGKILL, then the next one, and checks the ledger of
// ticks in the target queue: every second of the run fired, at least once,
// and a tick fired twice has the same job id both times.
func TestReplicasOneTickPerPeriod(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 15 seconds")
	}
	url := brokertest.URL(t)
	target := brokertest.Queue(t, "ticks", nil)
	lease := brokertest.Name(t, "lease")
	brokertest.DeleteQueuesAtCleanup(t, lease)
	name := brokertest.Name(t, "every-second")

	leads := make(chan int, 16) // replica index; more than the changes of one run
	replicas := []*replica{
		startReplica(t, 0, url, target, lease, name, leads),
		startReplica(t, 1, url, target, lease, name, leads),
		startReplica(t, 2, url, target, lease, name, leads),
	}
	first := waitLead(t, leads)
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	if err := replicas[first].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	second := waitLead(t, leads, first)
	t.Logf("replica %d led, was killed; replica %d took over", first, second)
	time.Sleep(3 * time.Second)
	if err := replicas[second].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	third := waitLead(t, leads, first, second)
	t.Logf("replica %d was killed; replica %d took over", second, third)
	time.Sleep(3 * time.Second)
	end := time.Now()
	for _, r := range replicas {
		r.stop()
	}
	ticks := checkLedger(t, target, name, end, 2)
	if !ticks[0].Before(killedAt) {
		t.Errorf("the first tick %s is after the first kill", ticks[0])
	}
}

// TestReplicaCatchesUpAfterOutage kills the only scheduler, starts
// another one 3 seconds later, and checks that it fires the ticks of the
// outage (within the catch-up window), read from the lease token.
func TestReplicaCatchesUpAfterOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 8 seconds")
	}
	url := brokertest.URL(t)
	target := brokertest.Queue(t, "ticks", nil)
	lease := brokertest.Name(t, "lease")
	brokertest.DeleteQueuesAtCleanup(t, lease)
	name := brokertest.Name(t, "every-second")
	leads := make(chan int, 4)
	a := startReplica(t, 0, url, target, lease, name, leads)
	waitLead(t, leads)
	time.Sleep(2 * time.Second)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.wait()
	killedAt := time.Now()
	time.Sleep(3 * time.Second)
	b := startReplica(t, 1, url, target, lease, name, leads)
	waitLead(t, leads)
	time.Sleep(2 * time.Second)
	end := time.Now()
	b.stop()
	ticks := checkLedger(t, target, name, end, 1)
	outage := 0
	for _, tick := range ticks {
		if tick.After(killedAt) && tick.Before(killedAt.Add(3*time.Second)) {
			outage++
		}
	}
	if outage < 2 {
		t.Errorf("%d ticks of the 3 s outage were fired", outage)
	}
}

// checkLedger reads every tick job from the target queue and checks that
// they are one a second with no gap up to end, each with its tick's job
// id, and at most one tick fired twice per leader killed (the one that
// may die between a tick's job and its token); it returns the distinct
// ticks in order.
func checkLedger(t *testing.T, target, name string, end time.Time, kills int) []time.Time {
	t.Helper()
	// The ledger.
	ch := brokertest.Channel(t)
	ids := map[time.Time]string{}
	var ticks []time.Time
	dups := 0
	for {
		d, ok, err := ch.Get(target, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		tick := tickOf(t, d)
		if got, want := d.MessageId, scheduler.JobID(name, tick); got != want {
			t.Errorf("tick %s has job id %s, want %s", tick, got, want)
		}
		if d.Type != "test.tick" {
			t.Errorf("job type %q", d.Type)
		}
		if _, seen := ids[tick]; seen {
			dups++
			continue
		}
		ids[tick] = d.MessageId
		ticks = append(ticks, tick)
	}
	slices.SortFunc(ticks, func(a, b time.Time) int { return a.Compare(b) })
	if len(ticks) < 5 {
		t.Fatalf("only %d ticks fired: %v", len(ticks), ticks)
	}
	for i := 1; i < len(ticks); i++ {
		if gap := ticks[i].Sub(ticks[i-1]); gap != time.Second {
			t.Errorf("ticks %s and %s are %s apart: missed ticks", ticks[i-1].Format(time.RFC3339), ticks[i].Format(time.RFC3339), gap)
		}
	}
	if last := ticks[len(ticks)-1]; end.Sub(last) > 2*time.Second {
		t.Errorf("the last tick is %s, the run ended at %s", last.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	}
	if dups > kills {
		t.Errorf("%d ticks fired twice, with %d leader(s) killed", dups, kills)
	}
	t.Logf("%d ticks from %s to %s, %d fired twice (same job id)", len(ticks), ticks[0].Format(time.RFC3339), ticks[len(ticks)-1].Format(time.RFC3339), dups)
	return ticks
}

func tickOf(t *testing.T, d amqp.Delivery) time.Time {
	t.Helper()
	s, _ := d.Headers[broker.HeaderScheduleTick].(string)
	tick, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("message %s: tick header %q: %v", d.MessageId, s, err)
	}
	if got, _ := d.Headers[broker.HeaderSchedule].(string); !strings.HasPrefix(got, "test.") {
		t.Errorf("schedule header %q", got)
	}
	return tick
}
