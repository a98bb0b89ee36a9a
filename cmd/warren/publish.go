package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/contract"
)

func newPublishCmd(g *globals) *cobra.Command {
	var (
		path, jobType, data, id, exchange, key, queue, appID string
		count                                                int
		priority                                             uint8
		headers                                              []string
		sched                                                scheduleFlags
		version                                              int
		validate                                             bool
	)
	cmd := &cobra.Command{
		Use:   "publish --type TYPE [--data JSON] [-f FILE | --exchange E --key K | --queue Q]",
		Short: "Publish jobs and wait for the broker's confirms",
		Long: `Publish one job (or --count of them) and wait until the broker confirms each.
The payload is given as JSON and sent as MessagePack. The job goes where the
topology file's route for its type says (-f), or to --exchange with --key, or
straight to --queue through the default exchange. With -f, a payload that
breaks the contract of its type and --version (docs/contracts.md) is
refused before it is sent (--validate=false sends it anyway).

Exits 0 only when every job was confirmed; a job no queue receives is an
error (unroutable), not a silent success.`,
		Example: `  warren job publish -f topology.yaml --type email.send --data '{"to":"a@example.com"}'
  warren job publish --exchange jobs --key email.send --type email.send --count 1000
  warren job publish -f topology.yaml --type report.render --data @report.json --in 10m
  jq -c .job event.json | warren job publish --queue emails --type email.send --data - --expiration 1h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobType == "" {
				return errors.New("--type is required: the job type workers dispatch on")
			}
			if count < 1 {
				return fmt.Errorf("--count %d: must be at least 1", count)
			}
			if id != "" && count > 1 {
				return errors.New("--id with --count > 1 would publish one id several times; drop one of them")
			}
			payload, err := readData(cmd, data)
			if err != nil {
				return err
			}
			hdrs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			when, err := sched.options()
			if err != nil {
				return err
			}
			var popts []broker.PublisherOption
			router, target, err := g.destination(cmd, path, exchange, key, queue, "publish")
			if err != nil {
				return err
			}
			if len(when) > 0 && cmd.Flags().Changed("exchange") {
				return errors.New("--in/--at with --exchange: a scheduled job goes to queues, not through an exchange; use -f FILE (its routes) or --queue Q")
			}
			target = append(target, when...)
			if router != nil {
				popts = append(popts, broker.WithRouter(router))
			}
			if path != "" && validate {
				// The contracts the topology file declares: a payload
				// that breaks its type's is refused before it is sent.
				set, err := contract.Load(path)
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("the contracts of %s: %w", path, err)}
				}
				if len(set.Types) > 0 {
					popts = append(popts, broker.WithValidator(set))
				}
			}
			if appID != "" {
				popts = append(popts, broker.WithAppID(appID))
			}
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			pub, err := broker.NewPublisher(conn, popts...)
			if err != nil {
				return err
			}
			defer pub.Close(context.WithoutCancel(ctx))
			jobs := make([]broker.Job, count)
			for i := range jobs {
				jobs[i] = broker.Job{ID: id, Type: jobType, Version: version, Payload: payload, Headers: hdrs, Priority: priority}
			}
			pubErr := pub.PublishBatch(ctx, jobs, target...)
			return reportPublish(g, jobs, pubErr)
		},
	}
	topologyFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVarP(&jobType, "type", "t", "", "job type (required)")
	f.StringVarP(&data, "data", "d", "null", "payload as JSON, @FILE to read it from FILE, or - to read it from stdin")
	sched.add(cmd)
	f.StringVar(&id, "id", "", "job id (default: a new UUIDv7 per job)")
	f.IntVarP(&count, "count", "n", 1, "how many jobs to publish")
	f.StringVar(&exchange, "exchange", "", "exchange to publish to (instead of the topology's route)")
	f.StringVar(&key, "key", "", "routing key, with --exchange")
	f.StringVar(&queue, "queue", "", "publish straight to this queue through the default exchange")
	f.Uint8Var(&priority, "priority", 0, "job priority (for queues with max_priority)")
	f.IntVar(&version, "version", 0, "the version of the job type's contract the payload follows (the warren-version header; 0: none, read as 1)")
	f.BoolVar(&validate, "validate", true, "with -f, check the payload against the contracts the topology file declares before publishing")
	f.StringArrayVarP(&headers, "header", "H", nil, "header NAME=VALUE (repeatable; numbers and true/false are typed)")
	f.StringVar(&appID, "app-id", "warren-cli", "app_id property: who published the job")
	return cmd
}

func reportPublish(g *globals, jobs []broker.Job, err error) error {
	failed := map[int]error{}
	var be *broker.BatchError
	if errors.As(err, &be) {
		for _, f := range be.Failed {
			failed[f.Index] = f.Err
		}
	} else if err != nil {
		return err
	}
	if g.json {
		type result struct {
			ID        string `json:"id"`
			Confirmed bool   `json:"confirmed"`
			Error     string `json:"error,omitempty"`
		}
		out := struct {
			Version   int      `json:"version"`
			Published int      `json:"published"`
			Failed    int      `json:"failed"`
			Jobs      []result `json:"jobs"`
		}{Version: 1, Published: len(jobs) - len(failed), Failed: len(failed)}
		for i, j := range jobs {
			r := result{ID: j.ID, Confirmed: failed[i] == nil}
			if failed[i] != nil {
				r.Error = failed[i].Error()
			}
			out.Jobs = append(out.Jobs, r)
		}
		if werr := writeJSON(g.stdout, out); werr != nil {
			return werr
		}
		if len(failed) > 0 {
			return &exitError{code: 1}
		}
		return nil
	}
	confirmed := len(jobs) - len(failed)
	if len(jobs) == 1 {
		if len(failed) == 1 {
			return failed[0]
		}
		fmt.Fprintf(g.stdout, "published job %s (type %s): confirmed by the broker\n", jobs[0].ID, jobs[0].Type)
		return nil
	}
	fmt.Fprintf(g.stdout, "%d of %d job(s) of type %s confirmed by the broker\n", confirmed, len(jobs), jobs[0].Type)
	if len(failed) == 0 {
		return nil
	}
	const shown = 5
	for i, f := range be.Failed {
		if i == shown {
			fmt.Fprintf(g.stderr, "... and %d more\n", len(be.Failed)-shown)
			break
		}
		fmt.Fprintf(g.stderr, "not confirmed: %s\n", advised(f.Err))
	}
	return fmt.Errorf("%d of %d job(s) were not confirmed (reasons above)", len(failed), len(jobs))
}

// parseHeaders turns NAME=VALUE pairs into typed header values.
func parseHeaders(pairs []string) (map[string]any, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(pairs))
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--header %q: want NAME=VALUE", p)
		}
		switch {
		case value == "true" || value == "false":
			out[name] = value == "true"
		default:
			if n, err := strconv.ParseInt(value, 10, 64); err == nil {
				out[name] = n
			} else if f, err := strconv.ParseFloat(value, 64); err == nil && strings.ContainsAny(value, ".eE") {
				out[name] = f
			} else {
				out[name] = value
			}
		}
	}
	return out, nil
}

// destination reads where a job goes from -f, --exchange/--key and
// --queue: a router (the topology's routes) or an explicit target.
func (g *globals) destination(cmd *cobra.Command, path, exchange, key, queue, verb string) (broker.Router, []broker.PublishOption, error) {
	switch {
	case queue != "":
		if exchange != "" || key != "" {
			return nil, nil, errors.New("--queue cannot be combined with --exchange/--key")
		}
		return nil, []broker.PublishOption{broker.To("", queue)}, nil
	case cmd.Flags().Changed("exchange"):
		return nil, []broker.PublishOption{broker.To(exchange, key)}, nil
	case path != "":
		t, err := g.loadTopology(path)
		if err != nil {
			return nil, nil, err
		}
		return t, nil, nil
	}
	return nil, nil, fmt.Errorf("nowhere to %s: pass -f FILE to use the topology's routes, --exchange E --key K, or --queue Q", verb)
}
