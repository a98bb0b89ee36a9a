package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
)

// newJobCmd is the job noun: job publish and job call. The older
// top-level spellings, warren publish and warren call, keep working
// (hidden from the command list; see newRoot).
func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Publish jobs and send requests",
		Long: `Publish jobs (job publish) and send requests that wait for their reply
(job call). warren publish and warren call are the same commands.`,
	}
	cmd.AddCommand(newPublishCmd(g), newCallCmd(g))
	return cmd
}

// hiddenAlias returns c, a command of a noun kept working under its old
// top-level name but left out of the command list.
func hiddenAlias(c *cobra.Command) *cobra.Command {
	c.Hidden = true
	return c
}

// readData reads --data: JSON given inline, "@FILE" for a file's content,
// or "-" for stdin.
func readData(cmd *cobra.Command, data string) (any, error) {
	text, from := data, "--data"
	switch {
	case data == "-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("--data -: read stdin: %w", err)
		}
		text, from = string(b), "--data - (stdin)"
	case strings.HasPrefix(data, "@"):
		name := data[1:]
		if name == "" {
			return nil, errors.New("--data @: name the file to read the payload from, as @FILE")
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", data, err)
		}
		text, from = string(b), "--data "+data
	}
	v, err := parseJSON(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return v, nil
}

// scheduleFlags are publish's --in, --at and --expiration.
type scheduleFlags struct {
	in, expiration time.Duration
	at             string
	cmd            *cobra.Command
}

func (s *scheduleFlags) add(cmd *cobra.Command) {
	s.cmd = cmd
	f := cmd.Flags()
	f.DurationVar(&s.in, "in", 0, "deliver the job after this delay (e.g. 90s, 2h), held by the broker meanwhile")
	f.StringVar(&s.at, "at", "", "deliver the job at this time (RFC 3339, e.g. 2026-12-05T10:00:00Z)")
	f.DurationVar(&s.expiration, "expiration", 0, "drop the job (or dead-letter it) if still queued after this long (per-message TTL)")
}

// options turns the flags into publish options, refusing what cannot be
// honoured before anything is sent.
func (s *scheduleFlags) options() ([]broker.PublishOption, error) {
	changed := s.cmd.Flags().Changed
	var opts []broker.PublishOption
	switch {
	case changed("in") && changed("at"):
		return nil, errors.New("--in and --at both given: schedule the job with one of them")
	case changed("in"):
		if s.in < 0 {
			return nil, fmt.Errorf("--in %s: the delay is negative; give how long from now, e.g. 90s", s.in)
		}
		opts = append(opts, broker.In(s.in))
	case changed("at"):
		t, err := time.Parse(time.RFC3339, s.at)
		if err != nil {
			return nil, fmt.Errorf("--at %q: want an RFC 3339 time such as 2026-12-05T10:00:00Z (or +01:00 for a zone), or use --in DURATION", s.at)
		}
		opts = append(opts, broker.At(t))
	}
	if changed("expiration") {
		if len(opts) > 0 {
			return nil, errors.New("--expiration with --in/--at: a scheduled job cannot expire (the broker holds it by expiring it from one delay queue into the next, and drops its TTL on the way); drop one of them")
		}
		if s.expiration < time.Millisecond {
			return nil, fmt.Errorf("--expiration %s: give a time to live of at least 1ms", s.expiration)
		}
		opts = append(opts, broker.Expire(s.expiration))
	}
	return opts, nil
}
