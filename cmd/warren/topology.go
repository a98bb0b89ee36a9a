package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/mgmt"
	"github.com/warrenmq/warren/topology"
)

func newTopologyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Validate, plan, apply and export a topology file",
	}
	cmd.AddCommand(newTopologyValidateCmd(g), newTopologyApplyCmd(g), newTopologyPlanCmd(g), newTopologyExportCmd(g))
	return cmd
}

type problemJSON struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Hint     string `json:"hint,omitempty"`
}

func problemsJSON(ps topology.Problems) []problemJSON {
	out := make([]problemJSON, 0, len(ps))
	for _, p := range ps {
		sev := "error"
		if p.Warning {
			sev = "warning"
		}
		out = append(out, problemJSON{File: p.Pos.File, Line: p.Pos.Line, Column: p.Pos.Column, Severity: sev, Message: p.Message, Hint: p.Hint})
	}
	return out
}

func newTopologyValidateCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check a topology file and list every problem in it",
		Long: `Check a topology file without touching a broker. Every problem is listed,
each with file:line:col and a hint; the exit status is 1 when there is an
error (warnings alone exit 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageError("no topology file: pass -f FILE or set WARREN_TOPOLOGY")
			}
			t, err := topology.Load(path)
			var problems topology.Problems
			if err != nil && !errors.As(err, &problems) {
				return err
			}
			if t != nil {
				problems = append(problems, t.Warnings...)
			}
			// The contracts the file declares or includes are checked
			// with it, once the topology itself loads.
			var contracts *contract.Set
			if err == nil {
				contracts, err = contract.Load(path)
				var cps contract.Problems
				switch {
				case errors.As(err, &cps):
					problems = append(problems, cps...)
				case err != nil:
					return err
				default:
					problems = append(problems, contracts.Warnings...)
				}
			}
			return reportValidation(g, path, problems, err, func() string {
				line := summary(t)
				if contracts != nil && len(contracts.Types) > 0 {
					line += "; contracts: " + contractSummary(contracts)
				}
				return line
			})
		},
	}
	topologyFlag(cmd, &path)
	return cmd
}

// reportValidation prints what validate found in file: every problem, then
// (when err is nil) that the file is valid and what summary says of it;
// or, with --json, all of it as one object. err is the load's error: the
// exit status is 1 when it is set.
func reportValidation(g *globals, file string, problems topology.Problems, err error, summary func() string) error {
	if g.json {
		out := struct {
			Version  int           `json:"version"`
			File     string        `json:"file"`
			Valid    bool          `json:"valid"`
			Problems []problemJSON `json:"problems"`
		}{1, file, err == nil, problemsJSON(problems)}
		if e := writeJSON(g.stdout, out); e != nil {
			return e
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(g.stdout, p.String())
		}
		if err == nil {
			fmt.Fprintf(g.stdout, "%s is valid: %s\n", file, summary())
		}
	}
	if err != nil {
		if g.json {
			return &exitError{code: exitFailure}
		}
		return &exitError{code: exitFailure, err: fmt.Errorf("%s has %d error(s)", file, errorCount(problems))}
	}
	return nil
}

func errorCount(ps topology.Problems) int {
	n := 0
	for _, p := range ps {
		if !p.Warning {
			n++
		}
	}
	return n
}

func summary(t *topology.Topology) string {
	var derived int
	for _, x := range t.Exchanges {
		if x.Derived {
			derived++
		}
	}
	for _, q := range t.Queues {
		if q.Derived {
			derived++
		}
	}
	schedules := ""
	if len(t.Schedules) > 0 {
		schedules = fmt.Sprintf(", %d schedule(s)", len(t.Schedules))
	}
	return fmt.Sprintf("%d exchange(s), %d queue(s), %d binding(s), %d route(s)%s; %d derived entities for retries and dead letters",
		len(t.Exchanges), len(t.Queues), len(t.Bindings), len(t.Routes), schedules, derived)
}

func newTopologyApplyCmd(g *globals) *cobra.Command {
	var path, mgmtURL string
	var verbose, policies bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--policies]",
		Short: "Declare a topology's exchanges, queues and bindings on the broker",
		Long: `Declare every exchange, queue and binding of the file, including those warren
derives for retries and dead letters. Applying is idempotent: entities that
already exist with the same attributes are left alone. An entity that exists
with different attributes is reported with the differing argument; RabbitMQ
cannot change it in place.

A queue whose differences are all tunables a policy can set (what plan
calls "update (by policy)") is reported with the same remedy as plan's: the
exact rabbitmqctl set_policy command. --policies sets those policies through
the management HTTP API, then reads the broker again: a queue the policy in
effect gives the file's values is no conflict (it is listed as existed, with
a warning that says so), in this run and the next ones.`,
		Example: `  warren topology apply -f topology.yaml
  warren topology apply -f topology.yaml --policies`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := g.loadTopology(path)
			if err != nil {
				return err
			}
			ctx := cmd.Context() // --timeout bounds it (root.go, prepare)
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			d := broker.NewDeclarer(conn)
			defer d.Close(ctx)
			report, declErr := topology.Declare(ctx, d, t)
			var pr policyRemedies
			if declErr != nil && queueConflicts(report) > 0 {
				pr = g.settleByPolicy(ctx, mgmtURL, path, t, report, policies)
				declErr = reportErrors(report, ctx.Err())
			}
			if g.json {
				if err := writeJSON(g.stdout, applyJSON(path, conn.URL(), report, declErr, pr)); err != nil {
					return err
				}
			} else {
				printApply(g, report, verbose)
				pr.print(g, path)
			}
			if declErr != nil {
				if g.json {
					return &exitError{code: 1}
				}
				return declErr
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list derived entities and bindings too")
	cmd.Flags().BoolVar(&policies, "policies", false, "set the policies that settle the conflicts a policy can settle (needs the management API and a policymaker user)")
	managementFlag(cmd, &mgmtURL)
	return cmd
}

// queueConflicts counts the queues whose declaration conflicted.
func queueConflicts(r *topology.Report) int {
	n := 0
	for _, o := range r.Entries {
		var ce *topology.ConflictError
		if o.Kind == topology.EntityQueue && errors.As(o.Err, &ce) {
			n++
		}
	}
	return n
}

// reportErrors joins the errors left in the report, and ctxErr.
func reportErrors(r *topology.Report, ctxErr error) error {
	var errs []error
	for _, o := range r.Failed() {
		errs = append(errs, o.Err)
	}
	if ctxErr != nil {
		errs = append(errs, ctxErr)
	}
	return errors.Join(errs...)
}

// policyRemedies is what apply found out, through the management API,
// about the queues that conflicted.
type policyRemedies struct {
	vhost string
	// remedies are the conflicts a policy can settle, not settled yet.
	remedies []topology.Change
	// set lists the policies --policies set.
	set []*topology.PolicyFix
	// unavailable says why there is no remedy: the management API's error.
	unavailable error
}

// settleByPolicy reads the broker through the management API and plans:
// a conflicting queue that the policy in effect settles is no failure
// (report is updated); the others that a policy can settle get their
// remedy, and with set, their policy, after which the broker is read
// again until the policies are in effect (the broker applies them a moment
// after it answers).
func (g *globals) settleByPolicy(ctx context.Context, mgmtURL, path string, t *topology.Topology, report *topology.Report, set bool) policyRemedies {
	var pr policyRemedies
	c, err := g.mgmtClient(mgmtURL)
	if err != nil {
		pr.unavailable = err
		return pr
	}
	defer c.Close()
	pr.vhost = c.Vhost()
	live, err := c.Live(ctx)
	if err != nil {
		pr.unavailable = err
		return pr
	}
	changes := topology.Plan(t, live)
	if set {
		for _, ch := range changes {
			if ch.Fix == nil {
				continue
			}
			f := ch.Fix
			err := c.PutPolicy(ctx, mgmt.Policy{Name: f.Name, Pattern: f.Pattern, ApplyTo: f.ApplyTo, Priority: f.Priority, Definition: f.Definition})
			if err != nil {
				pr.unavailable = fmt.Errorf("setting policy %s: %w", f.Name, err)
				break
			}
			pr.set = append(pr.set, f)
		}
		deadline := time.Now().Add(15 * time.Second)
	wait:
		for len(pr.set) > 0 {
			if live, err = c.Live(ctx); err != nil {
				pr.unavailable = err
				break
			}
			changes = topology.Plan(t, live)
			if !slices.ContainsFunc(changes, func(ch topology.Change) bool { return ch.Fix != nil }) || time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				break wait
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	pending := map[string]topology.Change{}
	for _, ch := range changes {
		if ch.Kind == topology.EntityQueue {
			pending[ch.Name] = ch
		}
	}
	for i := range report.Entries {
		o := &report.Entries[i]
		var ce *topology.ConflictError
		if o.Kind != topology.EntityQueue || !errors.As(o.Err, &ce) {
			continue
		}
		ch, ok := pending[o.Name]
		policy, hasPolicy := live.Policies[o.Name]
		switch {
		case !ok && hasPolicy:
			// Plan finds no difference left: the policy settles them all.
			o.Err, o.Existed = nil, true
			o.Warning = fmt.Sprintf("queue %q has other arguments than the file's (%s); policy %s gives it the file's values, so it is left as it is", o.Name, ce.Argument, policy.Name)
		case ch.Fix != nil:
			pr.remedies = append(pr.remedies, ch)
		}
	}
	return pr
}

func (pr policyRemedies) print(g *globals, path string) {
	for _, f := range pr.set {
		fmt.Fprintf(g.stdout, "set policy %s on queue %s: %s\n", f.Name, f.Queue, f.DefinitionJSON())
	}
	for _, ch := range pr.remedies {
		printChange(g.stdout, pr.vhost, path, ch, ch.Name)
	}
	if pr.unavailable != nil {
		fmt.Fprintf(g.stderr, "warren: no remedy for the conflicts from the management API: %v\n", pr.unavailable)
	}
}

func printApply(g *globals, r *topology.Report, verbose bool) {
	if r == nil {
		return
	}
	tb := table.New("STATE", "KIND", "NAME")
	counts := map[string]int{}
	var derived int
	for _, o := range r.Entries {
		state := o.Status()
		counts[state]++
		if o.Derived && o.Kind != topology.EntityBinding {
			derived++
		}
		if !verbose && state != "failed" && (o.Derived || o.Kind == topology.EntityBinding) {
			continue
		}
		tb.Row(state, o.Kind, o.Name)
	}
	if tb.Len() > 0 {
		tb.WriteTo(g.stdout)
	}
	fmt.Fprintf(g.stdout, "%d created, %d already existed, %d binding(s) in place, %d failed (%d derived entities; -v lists them)\n",
		counts["created"], counts["existed"], counts["bound"], counts["failed"], derived)
	for _, o := range r.Entries {
		if o.Warning != "" {
			fmt.Fprintf(g.stdout, "warning: %s\n", o.Warning)
		}
	}
}

type applyEntryJSON struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Derived bool   `json:"derived"`
	State   string `json:"state"` // created, existed, bound, failed
	Warning string `json:"warning,omitempty"`
}

func applyJSON(path, url string, r *topology.Report, err error, pr policyRemedies) any {
	out := struct {
		Version int              `json:"version"`
		File    string           `json:"file"`
		Broker  string           `json:"broker"`
		Entries []applyEntryJSON `json:"entries"`
		Errors  []string         `json:"errors"`
		// Remedies are the conflicts a policy can settle, as plan
		// lists them; PoliciesSet the policies --policies set.
		Remedies    []planChangeJSON `json:"remedies,omitempty"`
		PoliciesSet []planFixJSON    `json:"policies_set,omitempty"`
	}{Version: 1, File: path, Broker: url, Entries: []applyEntryJSON{}, Errors: []string{}}
	for _, ch := range pr.remedies {
		out.Remedies = append(out.Remedies, planChangeJSON{Action: string(ch.Action), Kind: ch.Kind, Name: ch.Name, Derived: ch.Derived,
			Details: ch.Details(), Fix: fixJSON(ch.Fix, pr.vhost)})
	}
	for _, f := range pr.set {
		out.PoliciesSet = append(out.PoliciesSet, *fixJSON(f, pr.vhost))
	}
	if pr.unavailable != nil {
		out.Errors = append(out.Errors, "no remedy from the management API: "+pr.unavailable.Error())
	}
	if r != nil {
		for _, o := range r.Entries {
			out.Entries = append(out.Entries, applyEntryJSON{Kind: o.Kind, Name: o.Name, Derived: o.Derived, State: o.Status(), Warning: o.Warning})
		}
	}
	if err != nil {
		out.Errors = append(out.Errors, splitErrors(err)...)
	}
	return out
}

// splitErrors lists the errors joined in err.
func splitErrors(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

func writeJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
