package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/contract/asyncapi"
	"github.com/warrenmq/warren/topology"
)

func newAsyncAPICmd(g *globals) *cobra.Command {
	var path, out, format string
	var opts asyncapi.Options
	cmd := &cobra.Command{
		Use:   "asyncapi -f FILE [-o OUT] [--format yaml|json] [--title TITLE] [--version VERSION] [--server URL]...",
		Short: "Write the AsyncAPI 3.0 document of a topology file's jobs and contracts",
		Long: `Write an AsyncAPI 3.0.0 document of the jobs a topology file routes and the
contracts it declares, without touching a broker: a channel per exchange and
per work queue (with their AMQP bindings and warren's queue type, dead-letter
queue, delivery limit and retry policy under x-warren), a message per job
type and contract version with its payload schema, and an operation to send
each job type to its route's exchange and one to receive it from each queue
the route reaches.

The output is the same for the same files and flags, so a committed document
can be checked for drift. --server (repeatable, NAME=URL to name it) adds
servers; the URL's user and password are never written. With --json and no
-o, the document is written as JSON; with -o, --json prints a summary.
docs/contracts.md ("AsyncAPI") describes the document.`,
		Example: `  warren asyncapi -f topology.yaml -o asyncapi.yaml
  warren asyncapi -f topology.yaml --format json --title "Taxi" --version 2.1.0 \
      --server prod=amqps://rabbit.example:5671/taxi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageError("no topology file: pass -f FILE or set WARREN_TOPOLOGY")
			}
			switch format {
			case "":
				opts.Format = asyncapi.YAML
				if g.json && (out == "" || out == "-") {
					opts.Format = asyncapi.JSON
				}
			case string(asyncapi.YAML), string(asyncapi.JSON):
				opts.Format = asyncapi.Format(format)
			default:
				return usageError("--format %q: use yaml or json", format)
			}
			if g.json && opts.Format == asyncapi.YAML && (out == "" || out == "-") {
				return usageError("--json prints JSON: drop --format yaml, or write the YAML to a file with -o")
			}
			set, err := contract.Load(path)
			if err != nil {
				var problems topology.Problems
				if errors.As(err, &problems) {
					return &exitError{code: exitFailure, err: fmt.Errorf("%s has %d error(s):\n%v", path, len(problems.Errors()), problems)}
				}
				return err
			}
			if set.Topology == nil {
				return &exitError{code: exitFailure, err: fmt.Errorf("%s is a contracts file: pass the topology file that includes it (-f), whose routes and queues the document describes", path)}
			}
			for _, w := range set.Warnings {
				fmt.Fprintln(g.stderr, w.String())
			}
			doc, err := asyncapi.Generate(set, opts)
			if err != nil {
				return usageError("%w", err) // the files loaded: what is left is the flags
			}
			if out == "" || out == "-" {
				_, err := g.stdout.Write(doc)
				return err
			}
			if err := os.WriteFile(out, doc, 0o644); err != nil {
				return fmt.Errorf("asyncapi: %w", err)
			}
			types := jobTypeCount(set)
			if g.json {
				return writeJSON(g.stdout, struct {
					Version  int    `json:"version"`
					File     string `json:"file"`
					Output   string `json:"output"`
					Format   string `json:"format"`
					JobTypes int    `json:"job_types"`
				}{1, path, out, string(opts.Format), types})
			}
			fmt.Fprintf(g.stdout, "wrote the AsyncAPI %s document of %s (%d job type(s)) to %s\n", asyncapi.Version, path, types, out)
			return nil
		},
	}
	topologyFlag(cmd, &path)
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	f.StringVar(&format, "format", "", "yaml or json (default yaml; json with --json)")
	f.StringVar(&opts.Title, "title", "", "info.title (default: the topology file's directory name and \"jobs\")")
	f.StringVar(&opts.Version, "version", "", "info.version, the version of the interface (default 1.0.0)")
	f.StringArrayVar(&opts.Servers, "server", nil, "a broker, amqp://host:5672/vhost or NAME=amqps://host:5671/vhost; repeatable")
	return cmd
}

// jobTypeCount counts the job types with a contract or a route.
func jobTypeCount(set *contract.Set) int {
	n := len(set.Types)
	for _, jt := range set.Topology.JobTypes() {
		if _, ok := set.Types[jt]; !ok {
			n++
		}
	}
	return n
}
