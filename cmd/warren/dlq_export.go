package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/deadletter"
)

func newDLQExportCmd(g *globals) *cobra.Command {
	var (
		ff    dlqFilterFlags
		limit int
		force bool
	)
	cmd := &cobra.Command{
		Use:         "export QUEUE FILE",
		Annotations: map[string]string{noDeadline: "yes"}, // its work grows with what it reads
		Short:       "Write the jobs of a dead-letter queue to a file, exactly as they are, removing none",
		Long: `Write the jobs of a dead-letter queue that match the filters (the same as
dlq list's) to FILE, one JSON record per line: every AMQP property, every
header with its AMQP type, the body's bytes in base64, and the queue they were
read from (schema in docs/cli.md). warren dlq import publishes them again,
here or on another cluster, exactly as they were.

Nothing is removed: the jobs are held unacked while they are read and all go
back with one nack, in their order. FILE is written under a temporary name
and renamed when it is complete, so a FILE that exists is whole; - writes to
stdout. A FILE that exists is not overwritten (it may hold the evidence of an
earlier export) unless --force is given. It reads at most 65,535 jobs per run.`,
		Example: `  warren dlq export default.dlq evidence.ndjson
  warren dlq export default.dlq - --class permanent | jq -r .error
  warren dlq export default.dlq moved.ndjson --type email.send --limit 1000`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue, path := args[0], args[1]
			filter, err := ff.filter()
			if err != nil {
				return err
			}
			if limit < 0 {
				return usageError("--limit %d: must be 0 (no limit) or more", limit)
			}
			if path != "-" && !force {
				if _, err := os.Lstat(path); err == nil {
					return fileExists(path)
				}
			}
			ctx := cmd.Context()
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			opts := deadletter.ExportOptions{Filter: filter, Limit: limit}
			if path == "-" {
				s, err := deadletter.Export(ctx, conn, queue, g.stdout, opts)
				if err != nil {
					return fmt.Errorf("%w (the records written to stdout before it are incomplete)", err)
				}
				return printExport(g, queue, path, s)
			}
			out, err := createAtomic(path, force)
			if err != nil {
				return err
			}
			s, err := deadletter.Export(ctx, conn, queue, out, opts)
			if err == nil {
				err = out.commit()
			}
			if err != nil {
				out.abort()
				if errors.Is(err, os.ErrExist) {
					return fileExists(path)
				}
				return fmt.Errorf("%w; nothing written to %s", err, path)
			}
			return printExport(g, queue, path, s)
		},
	}
	ff.add(cmd)
	cmd.Flags().IntVar(&limit, "limit", 0, "export at most this many jobs (0: all that match)")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite FILE if it exists")
	return cmd
}

// fileExists is the error of an export to a file that exists, without
// --force.
func fileExists(path string) error {
	return &exitError{code: exitFailure, err: fmt.Errorf("%s exists (an earlier export?): choose a new name, or pass --force to overwrite it; nothing written", path)}
}

func printExport(g *globals, queue, path string, s deadletter.ExportSummary) error {
	if s.Capped {
		fmt.Fprintf(g.stderr, "warren: %s holds more jobs than one run reads (%d); only those were read: narrow the export with filters, or export the rest after dealing with these\n", queue, s.Total)
	}
	if g.json && path != "-" {
		return writeJSON(g.stdout, struct {
			Version  int    `json:"version"`
			Queue    string `json:"queue"`
			File     string `json:"file"`
			Read     int    `json:"read"`
			Exported int    `json:"exported"`
			Capped   bool   `json:"capped"`
		}{1, queue, path, s.Read, s.Exported, s.Capped})
	}
	w, where := g.stdout, path
	if path == "-" {
		w, where = g.stderr, "stdout" // stdout holds the records
	}
	fmt.Fprintf(w, "%s: exported %d of %d job(s) read to %s\n", queue, s.Exported, s.Read, where)
	return nil
}

// atomicFile is written under a temporary name in its directory and
// renamed to its name by commit, so a file that exists under the name is
// whole: an interrupted export leaves at most a hidden temporary file,
// never a short file that looks complete.
type atomicFile struct {
	f         *os.File
	w         *bufio.Writer
	path      string
	overwrite bool // commit replaces a file under the name
}

// createAtomic starts the file; unless overwrite, commit fails with an
// error wrapping os.ErrExist when a file has the name by then.
func createAtomic(path string, overwrite bool) (*atomicFile, error) {
	// 0600 (CreateTemp's mode): dead letters may hold personal data.
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &atomicFile{f: f, w: bufio.NewWriterSize(f, 1<<20), path: path, overwrite: overwrite}, nil
}

func (a *atomicFile) Write(p []byte) (int, error) { return a.w.Write(p) }

// commit flushes, syncs and closes the file, then renames it to its name.
func (a *atomicFile) commit() error {
	err := a.w.Flush()
	if err == nil {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = a.rename()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	if d, err := os.Open(filepath.Dir(a.path)); err == nil {
		_ = d.Sync() // the rename itself survives a crash; best effort
		d.Close()
	}
	return nil
}

// rename gives the temporary file its name: a hard link when it must not
// replace a file (the link fails if one exists, even one created during
// the export), else, or where links are not supported, a rename.
func (a *atomicFile) rename() error {
	if a.overwrite {
		return os.Rename(a.f.Name(), a.path)
	}
	err := os.Link(a.f.Name(), a.path)
	if errors.Is(err, os.ErrExist) {
		return err
	}
	if err == nil {
		return os.Remove(a.f.Name())
	}
	if _, serr := os.Lstat(a.path); serr == nil {
		return fmt.Errorf("%s: %w", a.path, os.ErrExist)
	}
	return os.Rename(a.f.Name(), a.path)
}

// abort removes the temporary file.
func (a *atomicFile) abort() {
	a.f.Close()
	os.Remove(a.f.Name())
}

func newDLQImportCmd(g *globals) *cobra.Command {
	var (
		to, exchange, key string
		dryRun            bool
	)
	cmd := &cobra.Command{
		Use:         "import FILE",
		Annotations: map[string]string{noDeadline: "yes"}, // its work grows with what it reads
		Short:       "Publish the jobs of a dlq export file again, exactly as they were exported",
		Long: `Publish each record of FILE (written by warren dlq export or dlq purge
--export; - reads stdin) with the same properties, headers and body, byte for
byte: to the queue the record was exported from (through the default
exchange), or --to QUEUE, or --exchange E --key K. Each job is published as
mandatory and confirmed before the next: a job the broker does not take (no
such queue, a nack) is reported with its line and the import goes on; the
exit status is then 1.

A file is checked whole before anything is published, so a line that is not
a record imports nothing. From stdin the import stops at such a line and says
what it imported before it. --dry-run only checks the file.

Importing a file twice publishes its jobs twice; their ids are kept, so
handlers that de-duplicate on them run each once. A record with a user_id
property is refused by RabbitMQ unless it names the importing user.`,
		Example: `  warren dlq import evidence.ndjson --dry-run
  warren dlq import evidence.ndjson
  warren --url amqp://user:pw@other-cluster/ dlq import moved.ndjson --to default.dlq`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			opts := deadletter.ImportOptions{DryRun: dryRun}
			switch {
			case to != "" && cmd.Flags().Changed("exchange"):
				return errors.New("--to cannot be combined with --exchange/--key")
			case to != "":
				opts.To = deadletter.ToQueue(to)
			case cmd.Flags().Changed("exchange"):
				opts.To = deadletter.Target{Exchange: exchange, RoutingKey: key, Set: true}
			case key != "":
				return errors.New("--key goes with --exchange; to send every job to a queue, use --to QUEUE")
			}
			ctx := cmd.Context()
			name, in := "stdin", cmd.InOrStdin()
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				name, in = path, f
				// Checked whole first: a bad line imports nothing.
				s, err := deadletter.Import(ctx, nil, f, deadletter.ImportOptions{To: opts.To, DryRun: true})
				if dryRun {
					return printImport(g, name, true, s, err)
				}
				if err != nil {
					return printImport(g, name, false, deadletter.ImportSummary{Lines: s.Lines},
						fmt.Errorf("%w; nothing imported (the file is checked whole before anything is published)", err))
				}
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("read %s again after checking it: %w; nothing imported", path, err)
				}
			}
			if dryRun {
				s, err := deadletter.Import(ctx, nil, in, opts)
				return printImport(g, name, true, s, err)
			}
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			pub, err := broker.NewSender(conn, broker.WithAppID("warren-cli"))
			if err != nil {
				return err
			}
			defer pub.Close(context.WithoutCancel(ctx))
			s, err := deadletter.Import(ctx, pub, in, opts)
			if err != nil {
				err = fmt.Errorf("%w; imported %d job(s) before it, read nothing after it", err, s.Imported)
				var le *deadletter.LineError
				if errors.As(err, &le) && path == "-" {
					err = fmt.Errorf("%w: fix that line and import the lines from it on", err)
				}
			}
			return printImport(g, name, false, s, err)
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "publish every job to this queue (through the default exchange) instead of the queue it was exported from")
	f.StringVar(&exchange, "exchange", "", "publish every job to this exchange instead")
	f.StringVar(&key, "key", "", "routing key, with --exchange")
	f.BoolVar(&dryRun, "dry-run", false, "check the file; publish nothing")
	return cmd
}

// printImport reports an import (or a check, in a dry run) and returns
// the command's error: err, or exit status 1 when a job failed.
func printImport(g *globals, name string, dryRun bool, s deadletter.ImportSummary, err error) error {
	stopped := 0
	var le *deadletter.LineError
	if errors.As(err, &le) {
		stopped = le.Line
	}
	if g.json {
		type failed struct {
			Line  int    `json:"line"`
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		out := struct {
			Version       int      `json:"version"`
			File          string   `json:"file"`
			DryRun        bool     `json:"dry_run"`
			Lines         int      `json:"lines"`
			Imported      int      `json:"imported"`
			Failed        []failed `json:"failed"`
			StoppedAtLine int      `json:"stopped_at_line,omitempty"`
			Error         string   `json:"error,omitempty"`
		}{Version: 1, File: name, DryRun: dryRun, Lines: s.Lines, Imported: s.Imported, Failed: []failed{}, StoppedAtLine: stopped}
		if err != nil {
			out.Error = advised(err)
		}
		for _, f := range s.Failed {
			out.Failed = append(out.Failed, failed{f.Line, f.Record.Properties.MessageID, importAdvised(f.Err)})
		}
		if werr := writeJSON(g.stdout, out); werr != nil {
			return werr
		}
	} else {
		for _, f := range s.Failed {
			fmt.Fprintf(g.stderr, "line %d: job %s (%s): %s\n", f.Line, f.Record.Properties.MessageID, f.Record.Properties.Type, importAdvised(f.Err))
		}
		if dryRun {
			fmt.Fprintf(g.stdout, "%s: %d job(s) to import, %d that would fail (dry run: nothing published)\n", name, s.Imported, len(s.Failed))
		} else {
			fmt.Fprintf(g.stdout, "%s: imported %d job(s), failed %d\n", name, s.Imported, len(s.Failed))
		}
	}
	switch {
	case err != nil && g.json:
		return &exitError{code: 1} // the JSON says why
	case err != nil:
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", name, err)}
	case len(s.Failed) > 0:
		return &exitError{code: 1}
	}
	return nil
}

// checkExport refuses an --export FILE of purge before anything is read
// or asked: not stdout (each record is synced to disk before its job is
// deleted), not a file that exists (it may hold the evidence of an
// earlier purge).
func checkExport(path string) error {
	if path == "-" {
		return errors.New("--export needs a file: each record is synced to disk before its job is deleted")
	}
	if _, err := os.Lstat(path); err == nil {
		return exportExists(path)
	}
	return nil
}

func exportExists(path string) error {
	return fmt.Errorf("--export %s: the file exists (evidence of an earlier purge?); choose a new name; nothing deleted", path)
}

// createExport creates the --export FILE of purge, which must be new.
func createExport(path string) (*os.File, error) {
	if err := checkExport(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, exportExists(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--export: %w; nothing deleted", err)
	}
	return f, nil
}

// purgeExporter writes each record and syncs the file, before its job is
// deleted.
func purgeExporter(f *os.File) func(deadletter.Record) error {
	enc := deadletter.NewEncoder(f)
	return func(r deadletter.Record) error {
		if err := enc.Encode(r); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
		return nil
	}
}
