package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/contract"
	"github.com/warrenmq/warren/internal/gogen"
)

func newGenerateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate code from the contracts",
	}
	cmd.AddCommand(newGenerateGoCmd(g))
	return cmd
}

func newGenerateGoCmd(g *globals) *cobra.Command {
	var path, pkg, out string
	cmd := &cobra.Command{
		Use:   "go -f FILE --package NAME [-o OUT.go]",
		Short: "Write Go types and Publish/Handle functions for the contracts' job types",
		Long: `Write one Go file from the contracts of a topology file or a contracts
file: for each job type its name as a constant, and for each version the
payload's struct with a PublishXVn function (a broker.Job of that type and
version) and a HandleXVn function (registers a typed handler on a
worker.Mux for that version). A payload's typo becomes a compile error.

The file is gofmt'ed and the same for the same contracts. Without -o it is
written to stdout. The broker is not contacted. Run it from go generate:

  //go:generate go run github.com/warrenmq/warren/cmd/warren generate go -f ../topology.yaml --package contracts -o contracts.go

docs/contracts.md, section "Generated Go code", describes the output.`,
		Example: `  warren generate go -f topology.yaml --package contracts -o contracts/contracts.go`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" {
				return usageError("no contracts: pass -f FILE, a topology file or a contracts file, or set WARREN_TOPOLOGY")
			}
			if pkg == "" {
				return usageError("no package name: pass --package NAME, the package the generated file goes in")
			}
			set, err := contract.Load(path)
			if err != nil {
				var problems contract.Problems
				if errors.As(err, &problems) {
					return &exitError{code: 1, err: fmt.Errorf("%s has %d error(s):\n%v", path, len(problems.Errors()), problems)}
				}
				return &exitError{code: 1, err: err}
			}
			for _, w := range set.Warnings {
				fmt.Fprintln(g.stderr, w.String())
			}
			opts := gogen.Options{Package: pkg, Source: path}
			if out != "" && out != "-" {
				// The header's command runs in the output's directory,
				// as go generate runs it.
				opts.Output = filepath.Base(out)
				if rel, err := relativeTo(filepath.Dir(out), path); err == nil {
					opts.Source = rel
				}
			}
			src, err := gogen.Generate(set, opts)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if out == "" || out == "-" {
				_, err := g.stdout.Write(src)
				return err
			}
			if err := os.WriteFile(out, src, 0o644); err != nil {
				return fmt.Errorf("generate go: %w", err)
			}
			types, versions := len(set.Types), 0
			for _, t := range set.Types {
				versions += len(t.Versions)
			}
			if g.json {
				return writeJSON(g.stdout, struct {
					Version  int    `json:"version"`
					File     string `json:"file"`
					Output   string `json:"output"`
					Package  string `json:"package"`
					Types    int    `json:"types"`
					Versions int    `json:"versions"`
				}{1, path, out, pkg, types, versions})
			}
			fmt.Fprintf(g.stdout, "wrote %d job types (%d versions) to %s\n", types, versions, out)
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "file", "f", os.Getenv("WARREN_TOPOLOGY"), "topology file or contracts file (env WARREN_TOPOLOGY)")
	cmd.Flags().StringVar(&pkg, "package", "", "package name of the generated file (required)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

// relativeTo returns path relative to dir, with slashes.
func relativeTo(dir, path string) (string, error) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	absPath, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absDir, absPath)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(rel), nil
}
