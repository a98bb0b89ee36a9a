package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/cmd/warren/internal/table"
	"github.com/warrenmq/warren/contract"
)

func newContractCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contract",
		Short: "Check job contracts: compatibility of a change, mistakes, what a file declares",
	}
	cmd.AddCommand(newContractCheckCmd(g), newContractValidateCmd(g), newContractLsCmd(g))
	return cmd
}

// loadContracts loads the contracts of path, a topology file or a
// contracts file, printing every problem on failure.
func loadContracts(path string) (*contract.Set, error) {
	set, err := contract.Load(path)
	if err != nil {
		var problems contract.Problems
		if errors.As(err, &problems) {
			return nil, &exitError{code: exitFailure, err: fmt.Errorf("%s has %d error(s):\n%v", path, len(problems.Errors()), problems)}
		}
		return nil, err
	}
	return set, nil
}

// contractFile is the file of a contract command: its argument, else -f
// (WARREN_TOPOLOGY, the context's topology).
func contractFile(args []string, flag string) (string, error) {
	switch {
	case len(args) == 1:
		return args[0], nil
	case flag != "":
		return flag, nil
	}
	return "", usageError("no file: pass FILE, a topology file or a contracts file, or set WARREN_TOPOLOGY")
}

func newContractCheckCmd(g *globals) *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "check OLD NEW",
		Short: "Tell whether the contracts of NEW are compatible with those of OLD",
		Long: `Compare every version of every job type declared in OLD and NEW (each a
topology file or a contracts file) and list each difference with the rule
applied (docs/contracts.md#compatibility-rules) and the compatibility it
breaks:

  backward  consumers using NEW refuse payloads valid under OLD
            (messages already in queues, producers not yet upgraded)
  forward   consumers using OLD refuse payloads valid under NEW
            (workers not yet upgraded)

--mode says which breaks fail the check (exit status 1): full (the
default: during a rolling deploy old and new workers share a queue, so
both directions happen), backward or forward.`,
		Example: `  git show main:topology.yaml > /tmp/old.yaml
  warren contract check /tmp/old.yaml topology.yaml
  warren contract check --mode backward contracts/v1.yaml contracts/trips.yaml`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageError("check takes two files, OLD and NEW (each a topology file or a contracts file), not %d", len(args))
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			want, err := contract.ParseDirection(mode)
			if err != nil {
				return usageError("--mode %q: use backward, forward or full", mode)
			}
			old, err := loadContracts(args[0])
			if err != nil {
				return err
			}
			next, err := loadContracts(args[1])
			if err != nil {
				return err
			}
			r := contract.Compare(old, next)
			if g.json {
				if err := writeJSON(g.stdout, checkJSON(args[0], args[1], want, r)); err != nil {
					return err
				}
			} else {
				printCheck(g, want, r)
			}
			if r.Compatible(want) {
				return nil
			}
			if g.json {
				return &exitError{code: exitFailure}
			}
			return &exitError{code: exitFailure, err: checkAdvice(args[1], args[0], want, r, next)}
		},
	}
	cmd.Flags().StringVar(&mode, "mode", "full", "which breaks fail the check: backward, forward or full")
	return cmd
}

func printCheck(g *globals, want contract.Direction, r *contract.Report) {
	for _, v := range r.Versions {
		status := string(v.Change)
		switch b := v.Breaks(); {
		case b != 0:
			status = "breaks " + b.String() + " compatibility"
		case v.Change == contract.Unchanged:
			status = "compatible"
		case v.Change == contract.Changed:
			status = "compatible, changed"
		}
		fmt.Fprintf(g.stdout, "%s v%d: %s\n", table.Clean(v.Type), v.Version, status)
		if v.Change != contract.Changed && v.Change != contract.Removed {
			continue
		}
		for _, f := range v.Findings {
			path := f.Path
			if path == "" {
				path = "/"
			}
			breaks := "compatible"
			if f.Breaks != 0 {
				breaks = "breaks " + f.Breaks.String()
			}
			fmt.Fprintf(g.stdout, "  %s: %s (%s): %s\n", table.Clean(path), f.Rule, breaks, table.Clean(f.Message))
		}
	}
	broken := 0
	for _, v := range r.Versions {
		if v.Breaks()&want != 0 {
			broken++
		}
	}
	if broken == 0 {
		note := ""
		if other := r.Breaks() &^ want; other != 0 {
			note = fmt.Sprintf(" (%s compatibility is broken, which --mode %s allows)", other, want)
		}
		fmt.Fprintf(g.stdout, "compatible under --mode %s: %d version(s) compared%s\n", want, len(r.Versions), note)
		return
	}
	fmt.Fprintf(g.stdout, "incompatible under --mode %s: %d of %d version(s) break it\n", want, broken, len(r.Versions))
}

// checkAdvice says what to do about each version whose changes break
// want.
func checkAdvice(newPath, oldPath string, want contract.Direction, r *contract.Report, next *contract.Set) error {
	var steps []string
	for _, v := range r.Versions {
		if v.Breaks()&want == 0 {
			continue
		}
		if v.Change == contract.Removed {
			steps = append(steps, fmt.Sprintf("keep %s v%d, marked deprecated: true, until none of its messages are left in queues", v.Type, v.Version))
			continue
		}
		latest := v.Version
		if t := next.Types[v.Type]; t != nil && t.Latest().Number > latest {
			latest = t.Latest().Number
		}
		steps = append(steps, fmt.Sprintf("publish the change to %s v%d as a new version (%d) and keep version %d's handler", v.Type, v.Version, latest+1, v.Version))
	}
	return fmt.Errorf("%s breaks %s compatibility with %s: %s; see docs/versioning.md", newPath, want, oldPath, strings.Join(steps, "; "))
}

type checkDoc struct {
	Version    int            `json:"version"`
	Old        string         `json:"old"`
	New        string         `json:"new"`
	Mode       string         `json:"mode"`
	Compatible bool           `json:"compatible"` // under mode
	Breaks     string         `json:"breaks"`     // none, backward, forward, full
	Versions   []checkVersion `json:"versions"`
}

type checkVersion struct {
	Type     string         `json:"type"`
	Version  int            `json:"contract_version"`
	Change   string         `json:"change"`
	Breaks   string         `json:"breaks"`
	Findings []checkFinding `json:"findings"`
}

type checkFinding struct {
	Path    string `json:"path"`
	Rule    string `json:"rule"`
	Breaks  string `json:"breaks"`
	Message string `json:"message"`
}

func checkJSON(oldPath, newPath string, want contract.Direction, r *contract.Report) checkDoc {
	d := checkDoc{Version: 1, Old: oldPath, New: newPath, Mode: want.String(), Compatible: r.Compatible(want),
		Breaks: r.Breaks().String(), Versions: []checkVersion{}}
	for _, v := range r.Versions {
		cv := checkVersion{Type: v.Type, Version: v.Version, Change: string(v.Change), Breaks: v.Breaks().String(), Findings: []checkFinding{}}
		for _, f := range v.Findings {
			cv.Findings = append(cv.Findings, checkFinding{Path: f.Path, Rule: f.Rule, Breaks: f.Breaks.String(), Message: f.Message})
		}
		d.Versions = append(d.Versions, cv)
	}
	return d
}

func newContractValidateCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check the contracts of a topology file or a contracts file and list every problem",
		Long: `Load the contracts of FILE (a topology file, with the files it includes, or
a contracts file; default: -f, WARREN_TOPOLOGY) and list every problem and
warning, each with file:line:col and a hint. The exit status is 1 when there
is an error; warnings alone exit 0.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file, err := contractFile(args, path)
			if err != nil {
				return err
			}
			set, err := contract.Load(file)
			var problems contract.Problems
			if err != nil && !errors.As(err, &problems) {
				return err
			}
			if set != nil {
				problems = append(problems, set.Warnings...)
			}
			return reportValidation(g, file, problems, err, func() string { return contractSummary(set) })
		},
	}
	topologyFlag(cmd, &path)
	return cmd
}

func contractSummary(set *contract.Set) string {
	versions := 0
	for _, t := range set.Types {
		versions += len(t.Versions)
	}
	return fmt.Sprintf("%d job type(s), %d version(s), from %d file(s)", len(set.Types), versions, len(set.Files))
}

func newContractLsCmd(g *globals) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "ls [FILE]",
		Short: "List the job types and versions a file declares, with their required properties",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file, err := contractFile(args, path)
			if err != nil {
				return err
			}
			set, err := loadContracts(file)
			if err != nil {
				return err
			}
			if g.json {
				return writeJSON(g.stdout, lsJSON(file, set))
			}
			tb := table.New("TYPE", "VERSION", "DEPRECATED", "REQUIRED", "DESCRIPTION").AlignRight(1)
			for _, name := range set.Names() {
				t := set.Types[name]
				for _, n := range t.Numbers() {
					v := t.Versions[n]
					deprecated := ""
					if v.Deprecated {
						deprecated = "yes"
					}
					var required []string
					if v.Schema != nil {
						required = v.Schema.Required
					}
					tb.Row(name, strconv.Itoa(n), deprecated, strings.Join(required, ", "), table.Truncate(v.Description, 60))
				}
			}
			_, err = tb.WriteTo(g.stdout)
			return err
		},
	}
	topologyFlag(cmd, &path)
	return cmd
}

type lsDoc struct {
	Version int      `json:"version"`
	File    string   `json:"file"`
	Types   []lsType `json:"types"`
}

type lsType struct {
	Type        string      `json:"type"`
	Description string      `json:"description,omitempty"`
	Versions    []lsVersion `json:"versions"`
}

type lsVersion struct {
	Version     int      `json:"contract_version"`
	Deprecated  bool     `json:"deprecated"`
	Required    []string `json:"required"`
	Description string   `json:"description,omitempty"`
}

func lsJSON(file string, set *contract.Set) lsDoc {
	d := lsDoc{Version: 1, File: file, Types: []lsType{}}
	for _, name := range set.Names() {
		t := set.Types[name]
		lt := lsType{Type: name, Description: t.Description}
		for _, n := range t.Numbers() {
			v := t.Versions[n]
			required := []string{}
			if v.Schema != nil {
				required = append(required, v.Schema.Required...)
			}
			lt.Versions = append(lt.Versions, lsVersion{Version: n, Deprecated: v.Deprecated, Required: required, Description: v.Description})
		}
		d.Types = append(d.Types, lt)
	}
	return d
}
