package broker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeBroker keeps the unacked deliveries of one channel as RabbitMQ does,
// and fails as RabbitMQ would on a tag it does not hold.
type fakeBroker struct {
	mu       sync.Mutex
	unacked  map[uint64]bool
	acked    map[uint64]int
	nacked   map[uint64]int
	frames   int
	failures []string
}

func newFakeBroker(n int) *fakeBroker {
	f := &fakeBroker{unacked: map[uint64]bool{}, acked: map[uint64]int{}, nacked: map[uint64]int{}}
	for tag := uint64(1); tag <= uint64(n); tag++ {
		f.unacked[tag] = true
	}
	return f
}

func (f *fakeBroker) Ack(tag uint64, multiple bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames++
	if !f.unacked[tag] {
		f.failures = append(f.failures, fmt.Sprintf("ack(%d, multiple=%v): unknown delivery tag", tag, multiple))
		return nil
	}
	for t := range f.unacked {
		if t == tag || (multiple && t < tag) {
			delete(f.unacked, t)
			f.acked[t]++
		}
	}
	return nil
}

func (f *fakeBroker) Nack(tag uint64, multiple, requeue bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frames++
	if multiple || !f.unacked[tag] {
		f.failures = append(f.failures, fmt.Sprintf("nack(%d): unknown delivery tag", tag))
		return nil
	}
	delete(f.unacked, tag)
	f.nacked[tag]++
	return nil
}

// TestAckerSettlesEachTagOnce settles deliveries in random orders, from
// several goroutines, with acks and nacks mixed, and checks the broker saw
// each tag settled exactly once, the right way, with no frame it would
// refuse.
func TestAckerSettlesEachTagOnce(t *testing.T) {
	for _, batch := range []int{1, 4, 32} {
		for seed := range 20 {
			t.Run(fmt.Sprintf("batch=%d/seed=%d", batch, seed), func(t *testing.T) {
				t.Parallel()
				const n = 500
				rng := rand.New(rand.NewPCG(uint64(seed), uint64(batch)))
				fb := newFakeBroker(n)
				a := newAcker(fb, batch, time.Millisecond)

				order := rng.Perm(n)
				nack := make(map[uint64]bool)
				for tag := uint64(1); tag <= n; tag++ {
					nack[tag] = rng.IntN(10) == 0
				}
				var wg sync.WaitGroup
				const workers = 4
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := w; i < n; i += workers {
							tag := uint64(order[i] + 1)
							var err error
							switch {
							case nack[tag]:
								err = a.nack(tag, true)
							default:
								err = a.ack(tag)
							}
							if err != nil {
								t.Errorf("settle %d: %v", tag, err)
							}
						}
					}()
				}
				wg.Wait()
				if err := a.flushAll(); err != nil {
					t.Fatal(err)
				}
				a.markClosed()

				fb.mu.Lock()
				defer fb.mu.Unlock()
				for _, f := range fb.failures {
					t.Error(f)
				}
				if len(fb.unacked) != 0 {
					t.Errorf("%d deliveries never settled", len(fb.unacked))
				}
				for tag := uint64(1); tag <= n; tag++ {
					a, k := fb.acked[tag], fb.nacked[tag]
					switch {
					case nack[tag] && (k != 1 || a != 0):
						t.Errorf("tag %d: want one nack, got %d nacks and %d acks", tag, k, a)
					case !nack[tag] && (a != 1 || k != 0):
						t.Errorf("tag %d: want one ack, got %d acks and %d nacks", tag, a, k)
					}
				}
			})
		}
	}
}

// TestAckerGroupsInOrderAcks checks that in-order completions are settled
// with far fewer frames than deliveries.
func TestAckerGroupsInOrderAcks(t *testing.T) {
	const n = 320
	fb := newFakeBroker(n)
	a := newAcker(fb, 32, time.Hour) // no timer flush: only full batches
	for tag := uint64(1); tag <= n; tag++ {
		if err := a.ack(tag); err != nil {
			t.Fatal(err)
		}
	}
	if fb.frames != n/32 {
		t.Errorf("%d acks sent %d frames, want %d", n, fb.frames, n/32)
	}
	if len(fb.unacked) != 0 || len(fb.failures) != 0 {
		t.Errorf("unacked %d, failures %v", len(fb.unacked), fb.failures)
	}
}

// TestAckerGroupsALoneAck: an ack with nothing else outstanding (a
// sequential caller's request) is not sent on its own at once: the timer
// sends it within the delay, with any acks made meanwhile in the same
// frame.
func TestAckerGroupsALoneAck(t *testing.T) {
	fb := newFakeBroker(10)
	a := newAcker(fb, 32, 20*time.Millisecond)
	defer a.markClosed()
	if err := a.ack(1); err != nil {
		t.Fatal(err)
	}
	if err := a.ack(2); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	frames := fb.frames
	fb.mu.Unlock()
	if frames != 0 {
		t.Fatalf("%d frames sent at once for two lone acks, want them grouped on the timer", frames)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fb.mu.Lock()
		frames, acked, failures := fb.frames, fb.acked[1]+fb.acked[2], len(fb.failures)
		fb.mu.Unlock()
		if frames == 1 && acked == 2 && failures == 0 {
			return
		}
		if frames > 1 || failures != 0 || time.Now().After(deadline) {
			t.Fatalf("frames %d, acked %d of 2, failures %d: want one multiple ack of 1-2 from the timer", frames, acked, failures)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestAckerStragglers checks that deliveries finished behind a slow one are
// acked after a few delays, not held until the slow one finishes: otherwise
// they would hold the consumer's prefetch slots.
func TestAckerStragglers(t *testing.T) {
	fb := newFakeBroker(10)
	a := newAcker(fb, 32, time.Millisecond)
	defer a.markClosed()

	for tag := uint64(2); tag <= 10; tag++ { // tag 1 is the slow one
		if err := a.ack(tag); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fb.mu.Lock()
		left := len(fb.unacked)
		fb.mu.Unlock()
		if left == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries still unacked behind the slow one", left)
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.ack(1); err != nil {
		t.Fatal(err)
	}
	if err := a.flushAll(); err != nil {
		t.Fatal(err)
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if len(fb.unacked) != 0 || len(fb.failures) != 0 {
		t.Errorf("unacked %v, failures %v", fb.unacked, fb.failures)
	}
}

// nopSettler takes every ack and nack.
type nopSettler struct{}

func (nopSettler) Ack(uint64, bool) error        { return nil }
func (nopSettler) Nack(uint64, bool, bool) error { return nil }

// BenchmarkDelivery is a consumer's cost per job, from the delivery
// amqp091-go hands over to its ack, grouped as Consume groups them: what
// allocs/op counts is broker's (the pool's side is worker's
// BenchmarkProcess).
func BenchmarkDelivery(b *testing.B) {
	job := deliveredJob(b)
	b.ReportAllocs()
	for b.Loop() {
		job()
	}
}

// TestDeliveryAllocs holds a consumer's allocations per job to what
// BenchmarkDelivery measures: the delivery and its envelope, in one.
func TestDeliveryAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, deliveredJob(t)); n > 1 {
		t.Errorf("%v allocations per job, want 1", n)
	}
}

// deliveredJob returns a func that takes a job from a consumer, as Next
// does once amqp091-go hands it over, and acks it.
func deliveredJob(tb testing.TB) func() {
	tb.Helper()
	env, err := newEnvelope(Job{Type: "invoice.render", Payload: samplePayload()}, testNow)
	if err != nil {
		tb.Fatal(err)
	}
	in := deliveryOf(env.publishing())
	c := &Consumer{queue: "jobs", acks: newAcker(nopSettler{}, 32, 2*time.Millisecond)}
	tb.Cleanup(c.acks.markClosed)
	return func() {
		in.DeliveryTag++
		d := c.wrap(in)
		if d.Err != nil {
			tb.Fatal(d.Err)
		}
		if err := d.Ack(); err != nil {
			tb.Fatal(err)
		}
	}
}
