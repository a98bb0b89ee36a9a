package daemon

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
)

// Environment variables FromEnv reads. The warren CLI reads the same
// names (EnvURL, EnvLogLevel), with the same flags.
const (
	EnvURL             = "WARREN_URL"
	EnvHTTPAddr        = "WARREN_HTTP_ADDR"
	EnvShutdownTimeout = "WARREN_SHUTDOWN_TIMEOUT"
	EnvLogLevel        = "WARREN_LOG_LEVEL"
	EnvLogFormat       = "WARREN_LOG_FORMAT"
)

// Earlier names of EnvURL, still read when it is unset (EnvAMQPURL
// first), each with a one-line warning naming EnvURL.
const (
	// Deprecated: use EnvURL.
	EnvAMQPURL = "WARREN_AMQP_URL"
	// Deprecated: use EnvURL. (warren's tests still find their broker
	// through AMQP_URL, as amqp091-go's do.)
	EnvAMQPURLFallback = "AMQP_URL"
)

// Flag names of RegisterFlags; the warren CLI spells its flags the same.
const (
	FlagURL             = "url"
	FlagHTTPAddr        = "http-addr"
	FlagShutdownTimeout = "shutdown-timeout"
	FlagLogLevel        = "log-level"
	FlagLogFormat       = "log-format"
	// Deprecated: use FlagURL.
	FlagAMQPURL = "amqp-url"
)

// Log formats of Config.LogFormat.
const (
	// LogAuto logs for people (LogConsole) when the output is a
	// terminal, in JSON (LogJSON) otherwise.
	LogAuto = "auto"
	// LogJSON writes one JSON object a line, for log collectors.
	LogJSON = "json"
	// LogConsole writes aligned, coloured lines for people.
	LogConsole = "console"
)

// Config is what an operator sets for a worker daemon. DefaultConfig
// holds the defaults, FromEnv the environment's values, RegisterFlags
// the flags'. Its String method redacts passwords, so printing a Config
// is safe.
type Config struct {
	// URLs are the broker URLs, tried in turn (default
	// broker.DefaultURL). Flag --url, env WARREN_URL; comma-separated.
	// The deprecated --amqp-url, WARREN_AMQP_URL and AMQP_URL still
	// work, with a warning.
	URLs []string
	// HTTPAddr is where the probes and metrics are served (default
	// DefaultHTTPAddr); empty disables the server. Flag --http-addr, env
	// WARREN_HTTP_ADDR.
	HTTPAddr string
	// ShutdownTimeout is how long the jobs in flight may finish once the
	// shutdown starts (default DefaultShutdownTimeout). Flag
	// --shutdown-timeout, env WARREN_SHUTDOWN_TIMEOUT, as a Go duration
	// ("45s", "2m").
	ShutdownTimeout time.Duration
	// LogLevel is debug, info, warn or error (default info). Flag
	// --log-level, env WARREN_LOG_LEVEL.
	LogLevel string
	// LogFormat is LogAuto, LogJSON or LogConsole (default LogAuto).
	// Flag --log-format, env WARREN_LOG_FORMAT.
	LogFormat string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		URLs:            []string{broker.DefaultURL},
		HTTPAddr:        DefaultHTTPAddr,
		ShutdownTimeout: DefaultShutdownTimeout,
		LogLevel:        zerolog.LevelInfoValue,
		LogFormat:       LogAuto,
	}
}

// FromEnv returns DefaultConfig with the values the environment sets
// (see the Env constants); an empty variable counts as unset. A value
// that cannot be parsed keeps its default and is reported in the error,
// every one of them; the Config is usable either way, since a flag may
// still set it. A deprecated variable still works, with a one-line
// warning on stderr naming its replacement.
func FromEnv() (Config, error) {
	return fromEnv(os.LookupEnv, os.Stderr)
}

func fromEnv(lookup func(string) (string, bool), warn io.Writer) (Config, error) {
	c := DefaultConfig()
	get := func(name string) string {
		v, _ := lookup(name)
		return strings.TrimSpace(v)
	}
	var problems []error
	if urls := EnvURLs(lookup, warn); len(urls) > 0 {
		c.URLs = urls
	}
	if v := get(EnvHTTPAddr); v != "" {
		c.HTTPAddr = v
	}
	if v := get(EnvShutdownTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("daemon: %s=%q: not a duration; write it like 30s or 2m", EnvShutdownTimeout, v))
		} else {
			c.ShutdownTimeout = d
		}
	}
	if v := get(EnvLogLevel); v != "" {
		c.LogLevel = v
	}
	if v := get(EnvLogFormat); v != "" {
		c.LogFormat = v
	}
	return c, errors.Join(problems...)
}

// EnvURLs returns the broker URLs the environment sets, read with lookup
// (os.LookupEnv, say): EnvURL, else the deprecated EnvAMQPURL, else the
// deprecated EnvAMQPURLFallback; comma-separated; nil when none is set.
// When a deprecated variable supplies them, EnvURLs writes a one-line
// warning naming EnvURL to warn (nil: none). The warren CLI reads its
// URLs with it too.
func EnvURLs(lookup func(string) (string, bool), warn io.Writer) []string {
	for _, name := range []string{EnvURL, EnvAMQPURL, EnvAMQPURLFallback} {
		v, _ := lookup(name)
		urls := splitURLs(v)
		if len(urls) == 0 {
			continue
		}
		if name != EnvURL && warn != nil {
			fmt.Fprintf(warn, "Environment variable %s has been deprecated, use %s instead\n", name, EnvURL)
		}
		return urls
	}
	return nil
}

func splitURLs(s string) []string {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// RegisterFlags adds the daemon's flags to fs, with c's current values as
// their defaults (so call FromEnv first, and flags override the
// environment); parsing fs writes them into c. The broker URLs' passwords
// are redacted in the defaults --help shows. The deprecated --amqp-url
// still sets the URLs, hidden from --help; pflag warns on fs's output
// when it is used.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	urls := &urlList{urls: &c.URLs}
	fs.Var(urls, FlagURL, fmt.Sprintf("broker `URLs`, comma-separated or the flag repeated, tried in turn (env %s)", EnvURL))
	fs.Var(urls, FlagAMQPURL, "broker `URLs`: use --"+FlagURL)
	_ = fs.MarkDeprecated(FlagAMQPURL, "use --"+FlagURL+" instead") // cannot fail: the flag was just added
	fs.StringVar(&c.HTTPAddr, FlagHTTPAddr, c.HTTPAddr, fmt.Sprintf("address serving %s, %s and %s; empty disables it (env %s)", LivePath, ReadyPath, MetricsPath, EnvHTTPAddr))
	fs.DurationVar(&c.ShutdownTimeout, FlagShutdownTimeout, c.ShutdownTimeout, fmt.Sprintf("how long jobs in flight may finish after SIGTERM before they are cancelled and returned to their queue (env %s)", EnvShutdownTimeout))
	fs.StringVar(&c.LogLevel, FlagLogLevel, c.LogLevel, fmt.Sprintf("debug, info, warn or error (env %s)", EnvLogLevel))
	fs.StringVar(&c.LogFormat, FlagLogFormat, c.LogFormat, fmt.Sprintf("%s, %s, or %s: console on a terminal, else json (env %s)", LogJSON, LogConsole, LogAuto, EnvLogFormat))
}

// urlList is the pflag.Value of --url. The first --url replaces the
// URLs (the default, or the environment's), a repeated one adds to them,
// as the CLI's --url does. Its String, which pflag uses for the default
// shown by --help, redacts passwords.
type urlList struct {
	urls *[]string
	set  bool // by a flag already
}

// Type names the value in --help.
func (l *urlList) Type() string { return "urls" }

func (l *urlList) String() string {
	if l == nil || l.urls == nil {
		return ""
	}
	return strings.Join(redactAll(*l.urls), ",")
}

func (l *urlList) Set(s string) error {
	urls := splitURLs(s)
	if len(urls) == 0 {
		return errors.New("no URL given")
	}
	if l.set {
		urls = append(*l.urls, urls...)
	}
	*l.urls, l.set = urls, true
	return nil
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = broker.RedactURL(u)
	}
	return out
}

// Validate reports every problem of c at once, passwords redacted.
func (c Config) Validate() error {
	var problems []error
	if len(c.URLs) == 0 {
		problems = append(problems, fmt.Errorf("daemon: no broker URL; set --%s or %s, e.g. %s", FlagURL, EnvURL, broker.RedactURL(broker.DefaultURL)))
	}
	for _, u := range c.URLs {
		if err := checkURL(u); err != nil {
			problems = append(problems, err)
		}
	}
	if err := checkAddr(c.HTTPAddr); err != nil {
		problems = append(problems, err)
	}
	if c.ShutdownTimeout < 0 {
		problems = append(problems, fmt.Errorf("daemon: shutdown timeout %s must not be negative", c.ShutdownTimeout))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		problems = append(problems, err)
	}
	switch c.LogFormat {
	case LogAuto, LogJSON, LogConsole:
	default:
		problems = append(problems, fmt.Errorf("daemon: log format %q: use %s, %s or %s", c.LogFormat, LogJSON, LogConsole, LogAuto))
	}
	return errors.Join(problems...)
}

// checkURL checks the scheme and host of a broker URL; the error never
// contains its password.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("daemon: broker URL %s cannot be parsed; write it like %s", broker.RedactURL(raw), broker.RedactURL(broker.DefaultURL))
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("daemon: broker URL %s: scheme %q, want amqp or amqps", broker.RedactURL(raw), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("daemon: broker URL %s has no host", broker.RedactURL(raw))
	}
	return nil
}

func parseLevel(s string) (zerolog.Level, error) {
	lvl, err := zerolog.ParseLevel(s)
	if err != nil || s == "" || lvl < zerolog.DebugLevel || lvl > zerolog.ErrorLevel {
		return zerolog.NoLevel, fmt.Errorf("daemon: log level %q: use debug, info, warn or error", s)
	}
	return lvl, nil
}

// Logger returns a logger writing to w at c's level, with timestamps: in
// JSON, or for people with LogConsole, or with LogAuto when w is a
// terminal.
func (c Config) Logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := parseLevel(c.LogLevel)
	if err != nil {
		return zerolog.Nop(), err
	}
	terminal := isTerminal(w)
	switch c.LogFormat {
	case LogConsole:
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !terminal}
	case LogAuto:
		if terminal {
			w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		}
	case LogJSON:
	default:
		return zerolog.Nop(), fmt.Errorf("daemon: log format %q: use %s, %s or %s", c.LogFormat, LogJSON, LogConsole, LogAuto)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}

// String describes c with the broker URLs' passwords redacted.
func (c Config) String() string {
	return fmt.Sprintf("url=%s http-addr=%q shutdown-timeout=%s log-level=%s log-format=%s",
		strings.Join(redactAll(c.URLs), ","), c.HTTPAddr, c.ShutdownTimeout, c.LogLevel, c.LogFormat)
}

// GoString is String, so that %#v redacts too.
func (c Config) GoString() string { return "daemon.Config{" + c.String() + "}" }
