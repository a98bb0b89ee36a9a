package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/topology"
)

func newTopologyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topology",
		Short: "Validate and apply a topology file",
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
			if g.json {
				out := struct {
					Version  int           `json:"version"`
					File     string        `json:"file"`
					Valid    bool          `json:"valid"`
					Problems []problemJSON `json:"problems"`
				}{1, path, err == nil, problemsJSON(problems)}
				if e := writeJSON(g.stdout, out); e != nil {
					return e
				}
			} else {
				for _, p := range problems {
					fmt.Fprintln(g.stdout, p.String())
				}
				if err == nil {
					fmt.Fprintf(g.stdout, "%s is valid: %s\n", path, summary(t))
				}
			}
			if err != nil {
				if g.json {
					return &exitError{code: 1}
				}
				return &exitError{code: 1, err: fmt.Errorf("%s has %d error(s)", path, errorCount(problems))}
			}
			return nil
		},
	}
	topologyFlag(cmd, &path)
	return cmd
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
	return fmt.Sprintf("%d exchange(s), %d queue(s), %d binding(s), %d route(s); %d derived entities for retries and dead letters",
		len(t.Exchanges), len(t.Queues), len(t.Bindings), len(t.Routes), derived)
}

func newTopologyApplyCmd(g *globals) *cobra.Command {
	var path string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Declare a topology's exchanges, queues and bindings on the broker",
		Long: `Declare every exchange, queue and binding of the file, including those warren
derives for retries and dead letters. Applying is idempotent: entities that
already exist with the same attributes are left alone. An entity that exists
with different attributes is reported with the differing argument; RabbitMQ
cannot change it in place.`,
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
			if g.json {
				if err := writeJSON(g.stdout, applyJSON(path, conn.URL(), report, declErr)); err != nil {
					return err
				}
			} else {
				printApply(g, report, verbose)
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
	return cmd
}

func printApply(g *globals, r *topology.Report, verbose bool) {
	if r == nil {
		return
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
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
		fmt.Fprintf(w, "%s\t%s\t%s\n", state, o.Kind, o.Name)
	}
	w.Flush()
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

func applyJSON(path, url string, r *topology.Report, err error) any {
	out := struct {
		Version int              `json:"version"`
		File    string           `json:"file"`
		Broker  string           `json:"broker"`
		Entries []applyEntryJSON `json:"entries"`
		Errors  []string         `json:"errors"`
	}{Version: 1, File: path, Broker: url, Entries: []applyEntryJSON{}, Errors: []string{}}
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
