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

// exitError carries an exit code other than 1 and an optional message;
// a nil err means the command already printed what it had to say.
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
	stdout      io.Writer
	stderr      io.Writer
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "warren: %s\n", advised(ee.err))
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "warren: %s\n", advised(err))
	return 1
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
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "give up after this long")
	level := strings.TrimSpace(os.Getenv(daemon.EnvLogLevel))
	if level == "" {
		level = "warn"
	}
	pf.StringVar(&g.logLevel, daemon.FlagLogLevel, level, "log level: debug, info, warn, error (env "+daemon.EnvLogLevel+")")
	root.AddCommand(newTopologyCmd(g), hiddenAlias(newPublishCmd(g)), hiddenAlias(newCallCmd(g)), newDLQCmd(g), newBenchCmd(g), newStatsCmd(g))
	root.AddCommand(newVersionCmd(g), newQueueCmd(g), newJobCmd(g), newContextCmd(g))
	return root
}

func (g *globals) logger() zerolog.Logger {
	lvl, err := zerolog.ParseLevel(g.logLevel)
	if err != nil {
		lvl = zerolog.WarnLevel
	}
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
		return nil, errors.New("no topology file: pass -f FILE or set WARREN_TOPOLOGY")
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
	f, ok := w.(*os.File)
	if !ok {
		return true
	}
	fi, err := f.Stat()
	return err != nil || fi.Mode()&os.ModeCharDevice == 0
}
