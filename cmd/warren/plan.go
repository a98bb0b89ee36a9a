package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

// managementFlag adds --management-url. Its fallbacks (env
// WARREN_MANAGEMENT_URL, then the broker URL) are applied by mgmtClient,
// so that --help never prints a password.
func managementFlag(cmd *cobra.Command, u *string) {
	cmd.Flags().StringVar(u, "management-url", "",
		"management HTTP API URL (default: env WARREN_MANAGEMENT_URL, else, for a broker URL on the standard port, its host and credentials on port 15672, or 15671 over https for amqps)")
}

// mgmtClient returns a client of the management API for the vhost of the
// first broker URL: at flagURL, else WARREN_MANAGEMENT_URL, else derived
// from the broker URL. A management URL without credentials takes the
// broker URL's.
func (g *globals) mgmtClient(flagURL string) (*mgmt.Client, error) {
	amqpURL := g.brokerURLs()[0]
	vhost, err := mgmt.VhostFromAMQP(amqpURL)
	if err != nil {
		return nil, err
	}
	base := flagURL
	if base == "" {
		base = os.Getenv("WARREN_MANAGEMENT_URL")
	}
	if base == "" && g.ctx != nil {
		base = g.ctx.ManagementURL
	}
	var opts []mgmt.Option
	if base == "" {
		if base, err = mgmt.URLFromAMQP(amqpURL); err != nil {
			if errors.Is(err, mgmt.ErrUnknownURL) {
				err = fmt.Errorf("%w; give that node's management API URL with --management-url (env WARREN_MANAGEMENT_URL)", err)
			}
			return nil, err
		}
	} else if u, err := url.Parse(amqpURL); err == nil && u.User != nil && u.User.Username() != "" {
		p, _ := u.User.Password()
		opts = append(opts, mgmt.WithCredentials(u.User.Username(), p))
	}
	return mgmt.New(base, vhost, opts...)
}

func newTopologyPlanCmd(g *globals) *cobra.Command {
	var path, mgmtURL string
	var confirmTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "plan -f FILE",
		Short: "Compare a topology file with the broker and list what differs",
		Long: `Compare the file, and the entities warren derives from it, with what the
broker holds, read through the management HTTP API (a passive declare sees
neither arguments nor bindings). One line per difference:

  create              in the file, not on the broker: apply declares it
  update (by policy)  a tunable differs (TTL, max length, dead-letter target,
                      ...) that a RabbitMQ policy can set without a recreate
  needs recreate      the identity differs (type, durable, arguments, ...) or
                      a tunable no policy can reach: delete and apply again
  extra               on the broker, not in the file, under a name the file
                      could own; reported only

On a cluster, plan also warns when a retry could run minutes late after a
quorum queue's leader fails over: the broker's
dead_letter_worker_publisher_confirm_timeout (180 s by default) bounds how
late; the management API does not show it, so plan says how to read it and
what to set, and is quiet once --dead-letter-confirm-timeout says it is 10 s
or less. Warnings do not change the exit status.

apply reports a conflict for every update and recreate. Exit status: 0 when
there is nothing to create, update or recreate (extras alone exit 0), 2 when
there is, 1 on errors: a CI job can gate on it.`,
		Example: `  warren topology plan -f topology.yaml
  warren topology plan -f topology.yaml --json --management-url https://admin:pw@rabbit.example.com:15671`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.loadTopology(path)
			if err != nil {
				return err
			}
			c, err := g.mgmtClient(mgmtURL)
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			live, err := c.Live(ctx)
			if err != nil {
				return err
			}
			changes := topology.Plan(t, live)
			var warnings []string
			if w := failoverWarning(t, clusterSize(ctx, c), confirmTimeout); w != "" {
				warnings = append(warnings, w)
			}
			if g.json {
				if err := writeJSON(g.stdout, planJSON(path, c, changes, warnings)); err != nil {
					return err
				}
			} else {
				printPlan(g, path, c, t, changes)
				for _, w := range warnings {
					fmt.Fprintf(g.stdout, "warning: %s\n", w)
				}
			}
			if pending(changes) > 0 {
				return &exitError{code: exitPartial} // drift
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	managementFlag(cmd, &mgmtURL)
	cmd.Flags().DurationVar(&confirmTimeout, "dead-letter-confirm-timeout", envDuration("WARREN_DEAD_LETTER_CONFIRM_TIMEOUT"),
		"the broker's dead_letter_worker_publisher_confirm_timeout, which the management API does not show, e.g. 5s (env WARREN_DEAD_LETTER_CONFIRM_TIMEOUT; default: unknown)")
	return cmd
}

// envDuration is the duration in the environment variable name, or 0 when
// it is unset or not a duration (the flag's own parsing then reports a bad
// value given on the command line).
func envDuration(name string) time.Duration {
	d, err := time.ParseDuration(os.Getenv(name))
	if err != nil {
		return 0
	}
	return d
}

// clusterSize is the number of nodes of the broker's cluster, or 0 when
// the management API does not say (a user without the monitoring tag).
func clusterSize(ctx context.Context, c *mgmt.Client) int {
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return 0
	}
	return len(nodes)
}

// pending counts the changes apply or an operator has to make: all but the
// extras.
func pending(changes []topology.Change) int {
	n := 0
	for _, c := range changes {
		if c.Action != topology.ActionExtra {
			n++
		}
	}
	return n
}

func printPlan(g *globals, path string, c *mgmt.Client, t *topology.Topology, changes []topology.Change) {
	counts := map[topology.Action]int{}
	for _, ch := range changes {
		counts[ch.Action]++
		var about []string
		if ch.Derived {
			about = append(about, "derived")
		}
		if ch.Action == topology.ActionCreate && ch.Note != "" {
			about = append(about, ch.Note)
		}
		name := ch.Name
		if len(about) > 0 {
			name += " (" + strings.Join(about, "; ") + ")"
		}
		// The widest action is "update (by policy)", the widest kind
		// "exchange". Differences and notes on extras go on lines of their
		// own, as a binding's name can be long.
		printChange(g.stdout, c.Vhost(), path, ch, name)
	}
	where := fmt.Sprintf("vhost %s at %s", c.Vhost(), c.URL())
	extra := ""
	if n := counts[topology.ActionExtra]; n > 0 {
		extra = fmt.Sprintf("; %d extra on the broker, left alone", n)
	}
	if pending(changes) == 0 {
		fmt.Fprintf(g.stdout, "no changes: the broker matches %s (%d exchanges, %d queues, %d bindings; %s)%s\n",
			path, len(t.Exchanges), len(t.Queues), len(t.Bindings), where, extra)
		return
	}
	fmt.Fprintf(g.stdout, "%d to create, %d to update by policy, %d needing a recreate (%s)%s\n",
		counts[topology.ActionCreate], counts[topology.ActionUpdate], counts[topology.ActionRecreate], where, extra)
	if counts[topology.ActionUpdate]+counts[topology.ActionRecreate] > 0 {
		fmt.Fprintln(g.stdout, "apply reports a conflict for each update and recreate: set the policies (each update's remedy, or apply --policies), or delete those entities (losing their messages), or change the file to match; see docs/topology.md, \"Changing a topology that is in use\"")
	}
}

// printChange prints a change of plan, or a conflict of apply: its action,
// kind and name, its differences, and the remedy of an update by policy.
func printChange(w io.Writer, vhost, path string, ch topology.Change, name string) {
	fmt.Fprintf(w, "%-18s  %-8s  %s\n", ch.Action.Text(), ch.Kind, name)
	for _, d := range ch.Diffs {
		fmt.Fprintf(w, "    %s\n", d)
	}
	if ch.Action == topology.ActionExtra && ch.Note != "" {
		fmt.Fprintf(w, "    %s\n", ch.Note)
	}
	for _, l := range ch.Remedy(vhost, path) {
		fmt.Fprintf(w, "    %s\n", l)
	}
}

type planFixJSON struct {
	Policy     string         `json:"policy"`
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply_to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
	Replaces   string         `json:"replaces,omitempty"`
	Command    string         `json:"command"`
}

func fixJSON(f *topology.PolicyFix, vhost string) *planFixJSON {
	if f == nil {
		return nil
	}
	return &planFixJSON{Policy: f.Name, Pattern: f.Pattern, ApplyTo: f.ApplyTo, Priority: f.Priority,
		Definition: f.Definition, Replaces: f.Replaces, Command: f.Command(vhost)}
}

type planDiffJSON struct {
	Attribute string `json:"attribute"`
	Broker    any    `json:"broker"` // null when absent
	File      any    `json:"file"`   // null when absent
	Policy    string `json:"policy,omitempty"`
	Why       string `json:"why,omitempty"`
}

type planChangeJSON struct {
	Action  string         `json:"action"` // create, update, recreate, extra
	Kind    string         `json:"kind"`   // exchange, queue, binding
	Name    string         `json:"name"`
	Derived bool           `json:"derived"`
	Details string         `json:"details"`
	Diffs   []planDiffJSON `json:"diffs,omitempty"`
	// Fix is the policy that settles an update.
	Fix *planFixJSON `json:"fix,omitempty"`
}

func planJSON(path string, c *mgmt.Client, changes []topology.Change, warnings []string) any {
	out := struct {
		Version    int              `json:"version"`
		File       string           `json:"file"`
		Management string           `json:"management"`
		Vhost      string           `json:"vhost"`
		Pending    int              `json:"pending"`
		Changes    []planChangeJSON `json:"changes"`
		Warnings   []string         `json:"warnings,omitempty"`
	}{Version: 1, File: path, Management: c.URL(), Vhost: c.Vhost(), Pending: pending(changes), Changes: []planChangeJSON{}, Warnings: warnings}
	for _, ch := range changes {
		cj := planChangeJSON{Action: string(ch.Action), Kind: ch.Kind, Name: ch.Name, Derived: ch.Derived, Details: ch.Details(),
			Fix: fixJSON(ch.Fix, c.Vhost())}
		for _, d := range ch.Diffs {
			cj.Diffs = append(cj.Diffs, planDiffJSON{Attribute: d.Attribute, Broker: d.Live, File: d.Want, Policy: d.Policy, Why: d.Why})
		}
		out.Changes = append(out.Changes, cj)
	}
	return out
}

func newTopologyExportCmd(g *globals) *cobra.Command {
	var path, out, vhost string
	cmd := &cobra.Command{
		Use:   "export -f FILE [-o OUT]",
		Short: "Write a topology as RabbitMQ definitions (definitions.json)",
		Long: `Write the file's exchanges, queues and bindings, and the entities warren
derives from them, in RabbitMQ's definitions format: the JSON that
rabbitmqctl import_definitions, the management UI's import and the
load_definitions setting read. No users, vhosts, permissions or policies.
Exclusive queues are left out, as RabbitMQ's own export leaves them out.

The virtual host is --vhost, else the broker URL's (see --url); the broker
itself is not contacted.`,
		Example: `  warren topology export -f topology.yaml -o definitions.json
  rabbitmqctl import_definitions definitions.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.loadTopology(path)
			if err != nil {
				return err
			}
			if vhost == "" {
				if vhost, err = mgmt.VhostFromAMQP(g.brokerURLs()[0]); err != nil {
					return err
				}
			}
			defs := t.Definitions(vhost)
			if out == "" || out == "-" {
				return writeJSON(g.stdout, defs)
			}
			var buf strings.Builder
			if err := writeJSON(&buf, defs); err != nil {
				return err
			}
			if err := os.WriteFile(out, []byte(buf.String()), 0o644); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version   int    `json:"version"`
					File      string `json:"file"`
					Output    string `json:"output"`
					Vhost     string `json:"vhost"`
					Exchanges int    `json:"exchanges"`
					Queues    int    `json:"queues"`
					Bindings  int    `json:"bindings"`
				}{1, path, out, vhost, len(defs.Exchanges), len(defs.Queues), len(defs.Bindings)})
			}
			fmt.Fprintf(g.stdout, "wrote %d exchanges, %d queues and %d bindings for vhost %s to %s\n",
				len(defs.Exchanges), len(defs.Queues), len(defs.Bindings), vhost, out)
			return nil
		},
	}
	topologyFlag(cmd, &path)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	cmd.Flags().StringVar(&vhost, "vhost", "", "virtual host of the definitions (default: the broker URL's, usually /)")
	return cmd
}
