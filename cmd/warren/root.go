package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/topology"
)

// Exit statuses, the same for every command (docs/cli.md, "Exit status").
const (
	exitOK      = 0
	exitFailure = 1 // the command failed: a broker error, a bad file, a job not confirmed
	exitUsage   = 2 // the command line is wrong: unknown command or flag, bad value, missing argument
	// exitPartial: done in part, or "not in sync": drift (topology plan),
	// no reply or no end in time (call, --timeout), a dlq command that
	// read, moved or exported only part of what it was asked.
	exitPartial = 3
)

// exitError carries an exit status and an optional message; a nil err
// means the command already printed what it had to say.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a mistake in the command line (exit status 2).
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// globals are the flags every command shares.
type globals struct {
	urls     []string
	envURLs  []string // read once, so that a deprecation is warned once
	envRead  bool
	json     bool
	name     string
	timeout  time.Duration
	logLevel string
	// contextName is --context; ctx the context in use (nil: none).
	contextName string
	ctx         *contextConfig
	stdout      io.Writer // counts what is written, so an error is not a second JSON document
	stderr      io.Writer
	stdin       io.Reader
	// ask asks a yes/no question on the terminal; see askTerminal.
	ask func(question string) (yes bool, err error)
}

// errNoTerminal is ask's error when there is no terminal to ask on.
var errNoTerminal = errors.New("no terminal to ask on")

// askTerminal returns the question asker of a run: on the terminal of
// stdin and stderr, for "yes". Tests replace it.
var askTerminal = func(in io.Reader, out io.Writer) func(string) (bool, error) {
	return func(question string) (bool, error) {
		if !isTerminal(in) || !isTerminal(out) {
			return false, errNoTerminal
		}
		fmt.Fprintf(out, "%s type yes: ", question)
		var answer string
		fmt.Fscanln(in, &answer)
		return answer == "yes", nil
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runWithInput(ctx, args, os.Stdin, stdout, stderr)
}

func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &countingWriter{w: stdout}
	g := &globals{stdout: out, stderr: stderr, stdin: stdin, ask: askTerminal(stdin, stderr)}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(out)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	// What a command returns is an exitError (see prepare); anything else
	// is cobra's: an unknown command or flag, a bad flag value, the wrong
	// number of arguments.
	code, msg := exitUsage, err
	var ee *exitError
	if errors.As(err, &ee) {
		code, msg = ee.code, ee.err
	}
	if msg == nil {
		return code
	}
	text := advised(msg)
	fmt.Fprintf(stderr, "warren: %s\n", text)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", cmd.CommandPath())
	}
	// With --json, a command that printed nothing prints its error as a
	// document of its own; one that printed its document said there
	// what went wrong.
	if (g.json || jsonAsked(args)) && out.n == 0 {
		_ = writeJSON(stdout, errorJSON(code, text))
	}
	return code
}

// errorDoc is the --json document of a command that failed before it had
// a result to print.
type errorDoc struct {
	Version int `json:"version"`
	Error   struct {
		Message string `json:"message"`
		Code    int    `json:"code"` // the exit status
		Kind    string `json:"kind"` // usage, failure, partial
	} `json:"error"`
}

func errorJSON(code int, message string) errorDoc {
	d := errorDoc{Version: 1}
	d.Error.Message, d.Error.Code = message, code
	switch code {
	case exitUsage:
		d.Error.Kind = "usage"
	case exitPartial:
		d.Error.Kind = "partial"
	default:
		d.Error.Kind = "failure"
	}
	return d
}

// jsonAsked reports whether args ask for --json, for a command line that
// could not be parsed as far as the flag.
func jsonAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--json", "--json=true", "--json=1":
			return true
		}
	}
	return false
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// file is the *os.File under w, if any, to tell a terminal.
func file(w any) (*os.File, bool) {
	if c, ok := w.(*countingWriter); ok {
		w = c.w
	}
	f, ok := w.(*os.File)
	return f, ok
}

// noDeadline marks a command whose work grows with what it reads (a queue,
// a file, a benchmark): without --timeout it has no deadline.
const noDeadline = "warren/no-default-deadline"

// prepare gives every command of cmd's tree the same way out: a group run
// with an unknown subcommand is a usage error; before a command runs, the
// global flags are checked and --timeout becomes the deadline of its
// context; what it returns becomes an exitError (status 1 unless it chose
// one, 3 when its deadline passed).
func prepare(g *globals, cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		prepare(g, c)
	}
	if cmd.RunE == nil && cmd.Run == nil {
		if !cmd.HasSubCommands() {
			return
		}
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				err := fmt.Errorf("unknown command %q for %q", args[0], c.CommandPath())
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					err = fmt.Errorf("%w; did you mean %s?", err, strings.Join(s, " or "))
				}
				return &exitError{code: exitUsage, err: err}
			}
			return c.Help()
		}
	}
	runE := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if err := g.check(c); err != nil {
			return err
		}
		parent := c.Context()
		ctx, cancel := g.deadline(c)
		defer cancel()
		c.SetContext(ctx)
		err := runE(c, args)
		c.SetContext(parent)
		return g.exit(ctx, parent, err)
	}
}

// check checks the global flags.
func (g *globals) check(cmd *cobra.Command) error {
	if !validLevel(g.logLevel) {
		what := "--" + daemon.FlagLogLevel
		if !cmd.Flags().Changed(daemon.FlagLogLevel) {
			what = daemon.EnvLogLevel // the flag's default comes from it
		}
		return usageError("%s %q: use debug, info, warn or error", what, g.logLevel)
	}
	if g.timeout < 0 {
		return usageError("--timeout %v: must be a duration, e.g. 30s, or 0 for none", g.timeout)
	}
	return nil
}

// validLevel reports whether s is a log level, as a worker daemon reads
// it: debug, info, warn or error.
func validLevel(s string) bool {
	lvl, err := zerolog.ParseLevel(s)
	return err == nil && s != "" && lvl >= zerolog.DebugLevel && lvl <= zerolog.ErrorLevel
}

// deadline is the context of a command: --timeout from its start, for
// every command; without --timeout, 30s, or none for the commands marked
// noDeadline; --timeout 0 is none.
func (g *globals) deadline(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if g.timeout == 0 || (!cmd.Flags().Changed("timeout") && cmd.Annotations[noDeadline] != "") {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, g.timeout)
}

// exit turns what a command returned into an exitError.
func (g *globals) exit(ctx, parent context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	// A deadline passed, even when what failed noticed it a moment before
	// the context did (a dial's I/O deadline is the context's).
	dl, ok := ctx.Deadline()
	if (errors.Is(ctx.Err(), context.DeadlineExceeded) || (ok && !time.Now().Before(dl))) && parent.Err() == nil {
		return &exitError{code: exitPartial, err: fmt.Errorf("%w (gave up at --timeout %v; pass a longer one, or 0 for none)", err, g.timeout)}
	}
	return &exitError{code: exitFailure, err: err}
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "warren",
		Short: "Work dispatch over RabbitMQ: topology, jobs and dead letters",
		Long: `warren applies a topology file to RabbitMQ, publishes jobs and inspects queues.

Flags fall back to environment variables, named as for a worker daemon:
--url to WARREN_URL (several URLs, comma-separated, are tried in turn;
the deprecated AMQP_URL and WARREN_AMQP_URL still work, with a warning),
--log-level to WARREN_LOG_LEVEL, -f to WARREN_TOPOLOGY.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildInfo().String(),
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Parent() != nil && cmd.Parent().Name() == "context" {
				return nil // context commands read the file themselves
			}
			if cmd.Name() == "version" || (cmd.Parent() != nil && cmd.Parent().Name() == "completion") {
				return nil // they need no broker: a broken config file must not stop them
			}
			return g.useContext(cmd)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	// No default value is shown: WARREN_URL may hold a password, and
	// --help would print it. brokerURLs applies the fallback.
	pf.StringSliceVar(&g.urls, daemon.FlagURL, nil, "broker URL(s), tried in turn (default: env "+daemon.EnvURL+
		", else the deprecated "+daemon.EnvAMQPURL+" or "+daemon.EnvAMQPURLFallback+", else "+broker.RedactURL(broker.DefaultURL)+")")
	pf.StringVar(&g.contextName, "context", "", "use this context of the config file for this command (see warren context)")
	pf.BoolVar(&g.json, "json", false, "print results as JSON (schema in docs/cli.md)")
	pf.StringVar(&g.name, "connection-name", "warren-cli", "connection name shown by the broker")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "deadline of the whole command, connecting included; 0: none (default 30s; none for bench and the dlq commands that move or export jobs)")
	level := strings.TrimSpace(os.Getenv(daemon.EnvLogLevel))
	if level == "" {
		level = "warn"
	}
	pf.StringVar(&g.logLevel, daemon.FlagLogLevel, level, "log level: debug, info, warn, error (env "+daemon.EnvLogLevel+")")
	root.AddCommand(newTopologyCmd(g), hiddenAlias(newPublishCmd(g)), hiddenAlias(newCallCmd(g)), newDLQCmd(g), newBenchCmd(g), newStatsCmd(g))
	root.AddCommand(newVersionCmd(g), newQueueCmd(g), newScheduleCmd(g), newOutboxCmd(g), newJobCmd(g), newContextCmd(g), newUICmd(g))
	root.AddCommand(newInboxCmd(g), newUniqueCmd(g), newSagaCmd(g), newBatchCmd(g))
	root.AddCommand(newContractCmd(g))
	root.AddCommand(newGenerateCmd(g))
	root.AddCommand(newAsyncAPICmd(g))
	prepare(g, root)
	g.addCompletions(root)
	return root
}

func (g *globals) logger() zerolog.Logger {
	lvl, _ := zerolog.ParseLevel(g.logLevel) // checked before the command ran
	return zerolog.New(zerolog.ConsoleWriter{Out: g.stderr, NoColor: noColor(g.stderr)}).Level(lvl).With().Timestamp().Logger()
}

// brokerURLs returns the URLs of --url, else of the environment, as a
// worker daemon reads it (WARREN_URL, else the deprecated WARREN_AMQP_URL
// or AMQP_URL, with a warning on stderr), else the context's (see
// useContext), else the default.
func (g *globals) brokerURLs() []string {
	if len(g.urls) > 0 {
		return g.urls
	}
	if !g.envRead {
		g.envURLs, g.envRead = daemon.EnvURLs(os.LookupEnv, g.stderr), true
	}
	if len(g.envURLs) > 0 {
		return g.envURLs
	}
	if g.ctx != nil && g.ctx.URL != "" {
		return strings.Split(strings.ReplaceAll(g.ctx.URL, " ", ""), ",")
	}
	return []string{broker.DefaultURL}
}

// dial connects to the first answering URL.
func (g *globals) dial(ctx context.Context) (*broker.Conn, error) {
	// A command runs once: a lost connection ends it with a clear error
	// (what it moved so far is reported) rather than a wait.
	return broker.Dial(ctx, g.brokerURLs(), broker.WithName(g.name), broker.WithLogger(g.logger()), broker.WithoutReconnect())
}

// topologyFlag adds -f/--file with its environment fallback.
func topologyFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVarP(path, "file", "f", os.Getenv("WARREN_TOPOLOGY"), "topology file (env WARREN_TOPOLOGY)")
}

// loadTopology loads path, printing every problem on failure.
func (g *globals) loadTopology(path string) (*topology.Topology, error) {
	if path == "" {
		return nil, usageError("no topology file: pass -f FILE or set WARREN_TOPOLOGY")
	}
	t, err := topology.Load(path)
	if err != nil {
		var problems topology.Problems
		if errors.As(err, &problems) {
			return nil, &exitError{code: 1, err: fmt.Errorf("%s has %d error(s):\n%v", path, len(problems.Errors()), problems)}
		}
		return nil, err
	}
	return t, nil
}

func noColor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return true
	}
	return !isTerminal(w)
}

// isTerminal reports whether w (or the file under it) is a terminal.
func isTerminal(w any) bool {
	f, ok := file(w)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
