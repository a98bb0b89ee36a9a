package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/topology"
)

// completionTimeout bounds what a completion may ask the broker: a shell
// waits for the answer at every Tab, so no answer beats a slow one.
const completionTimeout = 1500 * time.Millisecond

// Dynamic completion. Queue names come from the topology file (-f, its
// environment variable or the context's), else from the management API,
// else there are none; job types from the topology file's routes. Nothing
// here fails a completion: a missing file or an unreachable broker gives
// no candidates, and the shell falls back to nothing rather than files.

// queueNames lists the queues of kind that the command's topology file
// declares; without a file, those the management API lists.
func (g *globals) queueNames(cmd *cobra.Command, kind queueKind) []string {
	_ = g.useContext(cmd) // the context's broker and topology, if any
	if t := completionTopology(cmd); t != nil {
		var names []string
		for _, q := range t.Queues {
			if kind.match(q.Name, q.Derived) {
				names = append(names, q.Name)
			}
		}
		slices.Sort(names)
		return names
	}
	c, err := g.mgmtClient(managementURLFlag(cmd))
	if err != nil {
		return nil
	}
	defer c.Close()
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithTimeout(parent, completionTimeout)
	defer cancel()
	qs, err := c.Queues(ctx)
	if err != nil {
		return nil
	}
	var names []string
	for _, q := range qs {
		if kind.match(q.Name, false) {
			names = append(names, q.Name)
		}
	}
	slices.Sort(names)
	return names
}

// queueKind says which queues a command takes.
type queueKind int

const (
	anyQueue  queueKind = iota // every queue
	workQueue                  // the queues jobs are published to and consumed from
	deadQueue                  // dead-letter queues (and the delay cascade's unroutable one)
)

func (k queueKind) match(name string, derived bool) bool {
	dead := strings.HasSuffix(name, topology.DeadLetterQueueName("")) || name == topology.DelayUnroutable
	switch k {
	case workQueue:
		return !derived && !dead
	case deadQueue:
		return dead
	}
	return true
}

// completionTopology loads the command's topology file, quietly: nil when
// there is none or it does not load.
func completionTopology(cmd *cobra.Command) *topology.Topology {
	f := cmd.Flags().Lookup("file")
	if f == nil || f.Value.String() == "" {
		return nil
	}
	t, err := topology.Load(f.Value.String())
	if err != nil {
		return nil
	}
	return t
}

func managementURLFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("management-url"); f != nil {
		return f.Value.String()
	}
	return ""
}

// completeQueueArg completes a command's first argument with queue names
// of kind; later arguments get nothing.
func (g *globals) completeQueueArg(kind queueKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return withPrefix(g.queueNames(cmd, kind), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeQueueFlag completes a --queue flag with work queue names.
func (g *globals) completeQueueFlag(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return withPrefix(g.queueNames(cmd, workQueue), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeJobType completes --type with the job types of the topology
// file's routes.
func (g *globals) completeJobType(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	_ = g.useContext(cmd)
	t := completionTopology(cmd)
	if t == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	types := t.JobTypes()
	slices.Sort(types)
	return withPrefix(types, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func withPrefix(names []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

// addCompletions wires the completions into the command tree, by command
// path, so that the commands' own files need not know about them.
func (g *globals) addCompletions(root *cobra.Command) {
	args := map[string]queueKind{
		"queue peek":   anyQueue,
		"queue purge":  anyQueue,
		"queue delete": anyQueue,
		"dlq list":     deadQueue,
		"dlq show":     deadQueue,
		"dlq replay":   deadQueue,
		"dlq purge":    deadQueue,
		"dlq export":   deadQueue,
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if kind, ok := args[path]; ok && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = g.completeQueueArg(kind)
		}
		if c.Flags().Lookup("type") != nil {
			_ = c.RegisterFlagCompletionFunc("type", g.completeJobType)
		}
		if c.Flags().Lookup("queue") != nil {
			_ = c.RegisterFlagCompletionFunc("queue", g.completeQueueFlag)
		}
	}
	walk(root)
}
