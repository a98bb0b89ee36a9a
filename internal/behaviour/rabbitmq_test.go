package behaviour_test

import (
	"os"
	"testing"
	"time"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/internal/behaviour"
	"github.com/warrenmq/warren/internal/brokertest"
	"github.com/warrenmq/warren/internal/testkit"
	"github.com/warrenmq/warren/internal/topotest"
	"github.com/warrenmq/warren/topology"
)

func TestMain(m *testing.M) { os.Exit(brokertest.MainWithLeakCheck(m)) }

// rabbitmq is the shared test broker: real time, unique names, cleanup.
type rabbitmq struct{}

func (rabbitmq) Apply(t testing.TB, text string) *topology.Topology { return topotest.Apply(t, text) }

func (rabbitmq) Dial(t testing.TB) *broker.Conn { return testkit.Dial(t, "warren-test-behaviour") }

func (rabbitmq) Pass(t testing.TB, d time.Duration) { time.Sleep(d) }

func (rabbitmq) Await(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, behaviour.Timeout, what, cond)
}

// The scenarios against RabbitMQ: what the emulation is held to.
func TestRabbitMQ(t *testing.T) { behaviour.Run(t, rabbitmq{}) }
