package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
)

// buildInfo is what warren version prints: the module version and the
// version-control revision the binary was built from, and the Go release.
type buildInfo struct {
	Version  int    `json:"version"` // of this JSON schema
	Warren   string `json:"warren"`  // module version, "(devel)" for a local build
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // built from a work tree with uncommitted changes
	Go       string `json:"go"`
}

// readBuildInfo reads the binary's build information; a binary built
// without module support reports "unknown".
func readBuildInfo() buildInfo {
	b := buildInfo{Version: 1, Warren: broker.Version(), Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line of warren version and warren --version.
func (b buildInfo) String() string {
	s := "warren " + b.Warren
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += " commit " + c
		if b.Modified {
			s += "+modified"
		}
		if b.Time != "" {
			s += " (" + b.Time + ")"
		}
	}
	return s + " " + b.Go
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print warren's version, the commit it was built from and the Go version",
		Long: `Print warren's module version, the version-control commit it was built
from (with its time, and +modified when the work tree had uncommitted
changes), and the Go release that compiled it. warren --version prints the
same line. With --json: {"version":1,"warren":..,"commit":..,"go":..}.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b := readBuildInfo()
			if g.json {
				return writeJSON(g.stdout, b)
			}
			_, err := fmt.Fprintln(g.stdout, b)
			return err
		},
	}
}
