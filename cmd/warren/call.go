package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
)

// Exit codes of warren call.
const (
	exitRemoteError = exitFailure // the job failed in its worker, or could not be sent
	exitCallTimeout = exitPartial // no reply in time
)

func newCallCmd(g *globals) *cobra.Command {
	var path, jobType, data, exchange, key, queue string
	var durable bool
	cmd := &cobra.Command{
		Use:   "call --type TYPE [--data JSON] [-f FILE | --exchange E --key K | --queue Q] [--timeout D]",
		Short: "Send a request and print its reply",
		Long: `Send a job as a request and wait for a worker's reply, in a reply queue of
its own (RabbitMQ names it amq.gen-...; over direct reply-to when the user may
not declare it). The payload is given as JSON and sent as MessagePack; the result is
printed as JSON. The request carries the deadline (--timeout), so no worker
starts it after this command gave up. It is transient unless --durable is
given: nobody waits for it once the deadline passed.

Exit status: 0 with the result; 1 when the job failed in its worker (its error
and class are printed; the job is in its queue's dead-letter queue) or could
not be sent; 2 when no reply came before --timeout.`,
		Example: `  warren job call -f topology.yaml --type passenger.authorise --data '{"rider":"ada"}' --timeout 5s
  warren job call --queue passenger --type passenger.authorise --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobType == "" {
				return errors.New("--type is required: the job type workers dispatch on")
			}
			payload, err := readData(cmd, data)
			if err != nil {
				return err
			}
			var copts []broker.CallerOption
			router, target, err := g.destination(cmd, path, exchange, key, queue, "send the request")
			if err != nil {
				return err
			}
			if router != nil {
				copts = append(copts, broker.WithCallRouter(router))
			}
			if durable {
				copts = append(copts, broker.WithDurableRequests())
			}
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			caller, err := broker.NewCaller(conn, append(copts, broker.WithCallAppID("warren-cli"))...)
			if err != nil {
				return err
			}
			defer caller.Close(ctx)
			reply, err := caller.Call(ctx, broker.Job{Type: jobType, Payload: payload}, target...)
			return reportCall(g, reply, err)
		},
	}
	topologyFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVarP(&jobType, "type", "t", "", "job type (required)")
	f.StringVarP(&data, "data", "d", "null", "payload as JSON, @FILE to read it from FILE, or - to read it from stdin")
	f.StringVar(&exchange, "exchange", "", "exchange to publish the request to (instead of the topology's route)")
	f.StringVar(&key, "key", "", "routing key, with --exchange")
	f.StringVar(&queue, "queue", "", "send the request straight to this queue through the default exchange")
	f.BoolVar(&durable, "durable", false, "send the request persistent, to survive a broker restart within --timeout (default: transient)")
	return cmd
}

// callJSON is warren call's --json output.
type callJSON struct {
	Version int    `json:"version"`
	Status  string `json:"status"` // ok, error, timeout, failed
	ID      string `json:"id,omitempty"`
	Result  any    `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
	Class   string `json:"class,omitempty"`
}

func reportCall(g *globals, reply *broker.Envelope, err error) error {
	out := callJSON{Version: 1}
	code := 0
	var re *broker.RemoteError
	switch {
	case err == nil:
		out.Status, out.ID = "ok", reply.CorrelationID
		if derr := reply.Decode(&out.Result); derr != nil {
			return fmt.Errorf("the reply's body: %w", derr)
		}
	case errors.As(err, &re):
		out.Status, out.ID, out.Error, out.Class = "error", re.RequestID, re.Message, re.Class
		code = exitRemoteError
	case errors.Is(err, broker.ErrReplyTimeout):
		out.Status, out.Error = "timeout", err.Error()
		code = exitCallTimeout
	default:
		out.Status, out.Error = "failed", err.Error()
		code = exitRemoteError
	}
	if g.json {
		if werr := writeJSON(g.stdout, out); werr != nil {
			return werr
		}
		if code != 0 {
			return &exitError{code: code}
		}
		return nil
	}
	switch out.Status {
	case "ok":
		return writeJSON(g.stdout, out.Result)
	case "error":
		return &exitError{code: code, err: fmt.Errorf("job %s failed in its worker (class %s): %s", out.ID, out.Class, out.Error)}
	}
	return &exitError{code: code, err: err}
}
