package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/dockertest/v3"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

// DefaultURL is the broker a development machine runs.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

var (
	once     sync.Once
	found    string
	findErr  error
	pool     *dockertest.Pool
	resource *dockertest.Resource
)

// Main runs the tests of a package that uses the broker and removes the
// container dockertest may have started. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(brokertest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if resource != nil {
		_ = pool.Purge(resource)
	}
	return code
}

// URL returns the URL of the test broker, failing t when there is none.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(func() { found, findErr = find() })
	if findErr != nil {
		t.Fatal(findErr)
	}
	return found
}

func find() (string, error) {
	if u := os.Getenv("AMQP_URL"); u != "" {
		if err := ping(u, 10*time.Second); err != nil {
			return "", fmt.Errorf("AMQP_URL is set but its broker does not answer: %v\nstart it, or unset AMQP_URL to use the local default %s", err, DefaultURL)
		}
		return u, nil
	}
	if err := ping(DefaultURL, 3*time.Second); err == nil {
		return DefaultURL, nil
	}
	u, derr := startContainer()
	if derr == nil {
		return u, nil
	}
	return "", fmt.Errorf("no RabbitMQ broker for the tests: nothing answers at %s and Docker is not usable (%v).\n"+
		"Start one with `make broker` (scripts/rabbitmq.sh: installs and starts rabbitmq-server on Debian/Ubuntu, or runs the official image with Docker), "+
		"or point AMQP_URL at a broker", DefaultURL, derr)
}

func ping(u string, timeout time.Duration) error {
	c, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(timeout)})
	if err != nil {
		return err
	}
	return c.Close()
}

func startContainer() (string, error) {
	p, err := dockertest.NewPool("")
	if err != nil {
		return "", err
	}
	if err := p.Client.Ping(); err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	r, err := p.Run("rabbitmq", "3-management", nil)
	if err != nil {
		return "", fmt.Errorf("docker run rabbitmq: %w", err)
	}
	_ = r.Expire(1800) // a crashed test binary leaves no container behind for long
	pool, resource = p, r
	u := fmt.Sprintf("amqp://guest:guest@%s/", net.JoinHostPort("127.0.0.1", r.GetPort("5672/tcp")))
	p.MaxWait = 2 * time.Minute
	if err := p.Retry(func() error { return ping(u, 5*time.Second) }); err != nil {
		_ = p.Purge(r)
		return "", fmt.Errorf("rabbitmq container did not answer: %w", err)
	}
	return u, nil
}

var unsafe = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Name returns a name unique to this test and run, e.g.
// "test.TestPublish.emails.3f9a1c". It never starts with "amq." or "warren."
// (names the broker and warren reserve).
func Name(t testing.TB, what string) string {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	test := unsafe.ReplaceAllString(t.Name(), "_")
	if len(test) > 80 {
		test = test[len(test)-80:]
	}
	return fmt.Sprintf("test.%s.%s.%s", test, what, hex.EncodeToString(b[:]))
}

// JobID returns a new job id, a UUIDv7 as broker.NewJobID makes, for a
// test that must know a job's id before it publishes the job.
func JobID(t testing.TB) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// Conn returns a plain amqp091-go connection for the test's own checks,
// closed at cleanup.
func Conn(t testing.TB) *amqp.Connection {
	t.Helper()
	c, err := amqp.Dial(URL(t))
	if err != nil {
		t.Fatalf("brokertest: dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Channel returns a channel on a new test connection.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := Conn(t).Channel()
	if err != nil {
		t.Fatalf("brokertest: channel: %v", err)
	}
	return ch
}

// DeleteQueuesAtCleanup deletes the queues when the test ends.
func DeleteQueuesAtCleanup(t testing.TB, names ...string) {
	t.Helper()
	u := URL(t)
	t.Cleanup(func() { cleanup(t, u, names, nil) })
}

// DeleteExchangesAtCleanup deletes the exchanges when the test ends.
func DeleteExchangesAtCleanup(t testing.TB, names ...string) {
	t.Helper()
	u := URL(t)
	t.Cleanup(func() { cleanup(t, u, nil, names) })
}

func cleanup(t testing.TB, u string, queues, exchanges []string) {
	c, err := amqp.Dial(u)
	if err != nil {
		t.Errorf("brokertest: cleanup: dial: %v", err)
		return
	}
	defer c.Close()
	for _, q := range queues {
		ch, err := c.Channel()
		if err != nil {
			t.Errorf("brokertest: cleanup: %v", err)
			return
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil && !isNotFound(err) {
			t.Errorf("brokertest: delete queue %s: %v", q, err)
		}
		_ = ch.Close()
	}
	for _, x := range exchanges {
		ch, err := c.Channel()
		if err != nil {
			t.Errorf("brokertest: cleanup: %v", err)
			return
		}
		if err := ch.ExchangeDelete(x, false, false); err != nil && !isNotFound(err) {
			t.Errorf("brokertest: delete exchange %s: %v", x, err)
		}
		_ = ch.Close()
	}
}

func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}

// Get fetches one message from queue within timeout, acking it, and fails t
// when none arrives.
func Get(t testing.TB, queue string, timeout time.Duration) amqp.Delivery {
	t.Helper()
	ch := Channel(t)
	deadline := time.Now().Add(timeout)
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("brokertest: get from %s: %v", queue, err)
		}
		if ok {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("brokertest: no message in %s within %v", queue, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Depth returns the number of ready messages in queue.
func Depth(t testing.TB, queue string) int {
	t.Helper()
	ch := Channel(t)
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("brokertest: inspect %s: %v", queue, err)
	}
	return q.Messages
}

// ManagementURL returns the base URL of the management HTTP API of the test
// broker, with credentials, e.g. "http://guest:guest@127.0.0.1:15672":
// MANAGEMENT_URL when set; else, for a container the tests started, its
// port mapped from 15672; else port 15672 of the broker's host, when the
// broker is on the standard port 5672. A broker on another port is
// another node (`make test RABBITMQ=4.3` runs one on port 5643), whose
// management port cannot be known from its URL: the test fails, asking
// for MANAGEMENT_URL, rather than read the API of whatever broker has
// 15672.
func ManagementURL(t testing.TB) string {
	t.Helper()
	if m := os.Getenv("MANAGEMENT_URL"); m != "" {
		return m
	}
	amqpURL := URL(t)
	var mapped string
	if resource != nil {
		mapped = resource.GetPort("15672/tcp")
	}
	m, err := managementURL(amqpURL, mapped)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return m
}

// managementURL derives the management API's URL from the broker's,
// with the container's mapped port when there is one.
func managementURL(amqpURL, mappedPort string) (string, error) {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return "", fmt.Errorf("AMQP_URL: %w", err)
	}
	port := "15672"
	switch {
	case mappedPort != "":
		port = mappedPort
	case u.Port() != "" && u.Port() != "5672":
		return "", fmt.Errorf("the test broker %s is on port %s, not 5672, so its management API is not the one on port 15672: "+
			"set MANAGEMENT_URL to it (make test RABBITMQ=4.3 does, for its node)", u.Redacted(), u.Port())
	}
	user := u.User
	if user == nil {
		user = url.UserPassword("guest", "guest")
	}
	return fmt.Sprintf("http://%s@%s", user.String(), net.JoinHostPort(u.Hostname(), port)), nil
}

// Context returns a context ending at the test's deadline or after d,
// whichever is first.
func Context(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// MainWithLeakCheck is Main followed by a goroutine leak check (goleak) when
// the tests passed.
func MainWithLeakCheck(m *testing.M, opts ...goleak.Option) int {
	code := Main(m)
	if code != 0 || resource != nil {
		// dockertest's HTTP client keeps goroutines of its own.
		return code
	}
	if err := goleak.Find(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "goleak: goroutines leaked by the tests: %v\n", err)
		return 1
	}
	return code
}

// Queue declares a durable classic queue with a unique name made of the
// test's and what, with the arguments args (nil: none), deleted at
// cleanup.
func Queue(t testing.TB, what string, args map[string]any) string {
	t.Helper()
	q := Name(t, what)
	if _, err := Channel(t).QueueDeclare(q, true, false, false, false, amqp.Table(args)); err != nil {
		t.Fatal(err)
	}
	DeleteQueuesAtCleanup(t, q)
	return q
}
