package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
	"github.com/warrenmq/warren/worker"
)

// env is a fake environment for daemon.FromLookup.
type env map[string]string

func (e env) lookup(name string) (string, bool) {
	v, ok := e[name]
	return v, ok
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	def := daemon.DefaultConfig()
	with := func(change func(*daemon.Config)) daemon.Config {
		c := daemon.DefaultConfig()
		change(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		env  env
		want daemon.Config
		bad  []string // variables the error must name
	}{
		{name: "nothing set", env: env{}, want: def},
		{
			name: "WARREN_URL wins over the deprecated names",
			env:  env{"WARREN_URL": "amqp://n:pw@new:5672/,amqp://n:pw@new2:5672/", "WARREN_AMQP_URL": "amqp://a:pw@one:5672/", "AMQP_URL": "amqp://b:pw@three:5672/"},
			want: with(func(c *daemon.Config) { c.URLs = []string{"amqp://n:pw@new:5672/", "amqp://n:pw@new2:5672/"} }),
		},
		{
			name: "WARREN_AMQP_URL wins over AMQP_URL",
			env:  env{"WARREN_AMQP_URL": "amqp://a:pw@one:5672/, amqp://a:pw@two:5672/", "AMQP_URL": "amqp://b:pw@three:5672/"},
			want: with(func(c *daemon.Config) { c.URLs = []string{"amqp://a:pw@one:5672/", "amqp://a:pw@two:5672/"} }),
		},
		{
			name: "AMQP_URL when WARREN_AMQP_URL is unset",
			env:  env{"AMQP_URL": "amqp://b:pw@three:5672/"},
			want: with(func(c *daemon.Config) { c.URLs = []string{"amqp://b:pw@three:5672/"} }),
		},
		{
			name: "an empty variable counts as unset",
			env:  env{"WARREN_AMQP_URL": " ", "AMQP_URL": "amqp://b:pw@three:5672/", "WARREN_HTTP_ADDR": ""},
			want: with(func(c *daemon.Config) { c.URLs = []string{"amqp://b:pw@three:5672/"} }),
		},
		{
			name: "everything",
			env: env{"WARREN_HTTP_ADDR": "127.0.0.1:9000", "WARREN_SHUTDOWN_TIMEOUT": "2m",
				"WARREN_LOG_LEVEL": "debug", "WARREN_LOG_FORMAT": "console"},
			want: with(func(c *daemon.Config) {
				c.HTTPAddr, c.ShutdownTimeout, c.LogLevel, c.LogFormat = "127.0.0.1:9000", 2*time.Minute, "debug", "console"
			}),
		},
		{
			name: "a bad duration keeps the default",
			env:  env{"WARREN_SHUTDOWN_TIMEOUT": "30", "WARREN_LOG_LEVEL": "warn"},
			want: with(func(c *daemon.Config) { c.LogLevel = "warn" }),
			bad:  []string{"WARREN_SHUTDOWN_TIMEOUT"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := daemon.FromLookup(tc.env.lookup)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if len(tc.bad) == 0 && err != nil {
				t.Errorf("error %v, want none", err)
			}
			for _, name := range tc.bad {
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("error %v, want it to name %s", err, name)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c := daemon.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("the default config does not validate: %v", err)
	}
	if c.HTTPAddr != daemon.DefaultHTTPAddr || !strings.HasSuffix(daemon.DefaultHTTPAddr, fmt.Sprintf(":%d", daemon.DefaultPort)) {
		t.Errorf("HTTP address %q, port %d: they disagree", c.HTTPAddr, daemon.DefaultPort)
	}
	if c.ShutdownTimeout != daemon.DefaultShutdownTimeout {
		t.Errorf("shutdown timeout %s, want %s", c.ShutdownTimeout, daemon.DefaultShutdownTimeout)
	}
	// The daemon's deadline and the pool's default are one deadline.
	if daemon.DefaultShutdownTimeout != worker.DefaultShutdownTimeout {
		t.Errorf("daemon.DefaultShutdownTimeout %s, worker.DefaultShutdownTimeout %s: they must agree", daemon.DefaultShutdownTimeout, worker.DefaultShutdownTimeout)
	}
	if diff := cmp.Diff([]string{broker.DefaultURL}, c.URLs); diff != "" {
		t.Errorf("URLs (-want +got):\n%s", diff)
	}
}

// TestFlagsOverrideTheEnvironment: flags registered after FromEnv take
// the environment's values as defaults, and win when given.
func TestFlagsOverrideTheEnvironment(t *testing.T) {
	t.Parallel()
	c, err := daemon.FromLookup(env{"WARREN_AMQP_URL": "amqp://u:pw@env:5672/", "WARREN_HTTP_ADDR": ":9000", "WARREN_LOG_LEVEL": "warn"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--amqp-url", "amqp://u:pw@flag1:5672/,amqp://u:pw@flag2:5672/", "--shutdown-timeout", "45s", "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	want := daemon.Config{
		URLs:            []string{"amqp://u:pw@flag1:5672/", "amqp://u:pw@flag2:5672/"},
		HTTPAddr:        ":9000",
		ShutdownTimeout: 45 * time.Second,
		LogLevel:        "warn",
		LogFormat:       "json",
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if err := fs.Parse([]string{"--amqp-url", " , "}); err == nil {
		t.Error("an empty --amqp-url was accepted")
	}
	if err := fs.Parse([]string{"--url", " , "}); err == nil {
		t.Error("an empty --url was accepted")
	}
}

// TestURLFlagRepeated: the first --url replaces the environment's URLs, a
// repeated one adds to them, as in the CLI.
func TestURLFlagRepeated(t *testing.T) {
	t.Parallel()
	c, err := daemon.FromLookup(env{"WARREN_URL": "amqp://u:pw@env:5672/"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--url", "amqp://u:pw@one:5672/", "--url", "amqp://u:pw@two:5672/,amqp://u:pw@three:5672/"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"amqp://u:pw@one:5672/", "amqp://u:pw@two:5672/", "amqp://u:pw@three:5672/"}
	if diff := cmp.Diff(want, c.URLs); diff != "" {
		t.Errorf("URLs (-want +got):\n%s", diff)
	}
}

// TestDeprecatedNames: --amqp-url, WARREN_AMQP_URL and AMQP_URL still set
// the URLs, each with a one-line warning naming its replacement; --url
// and WARREN_URL set them without one.
func TestDeprecatedNames(t *testing.T) {
	t.Parallel()
	const u = "amqp://u:pw@there:5672/"
	for _, tc := range []struct {
		name string
		env  env
		args []string
		warn string // "" when nothing may be written
	}{
		{name: "WARREN_URL", env: env{"WARREN_URL": u}},
		{name: "--url", args: []string{"--url", u}},
		{name: "WARREN_AMQP_URL", env: env{"WARREN_AMQP_URL": u}, warn: "WARREN_AMQP_URL has been deprecated, use WARREN_URL instead"},
		{name: "AMQP_URL", env: env{"AMQP_URL": u}, warn: "AMQP_URL has been deprecated, use WARREN_URL instead"},
		{name: "--amqp-url", args: []string{"--amqp-url", u}, warn: "--amqp-url has been deprecated, use --url instead"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			c, err := daemon.FromLookupWarn(tc.env.lookup, &out)
			if err != nil {
				t.Fatal(err)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.SetOutput(&out)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{u}, c.URLs); diff != "" {
				t.Errorf("URLs (-want +got):\n%s", diff)
			}
			got := out.String()
			switch {
			case tc.warn == "" && got != "":
				t.Errorf("warned %q, want nothing", got)
			case tc.warn != "" && !strings.Contains(got, tc.warn):
				t.Errorf("warned %q, want %q", got, tc.warn)
			case tc.warn != "" && strings.Count(strings.TrimSpace(got), "\n") != 0:
				t.Errorf("warned %q, want one line", got)
			case strings.Contains(got, "pw"):
				t.Errorf("the warning shows the password: %q", got)
			}
		})
	}
}

// TestPasswordsAreNeverPrinted: --help, String, %v, %+v, %#v and the
// validation errors show the URLs without their password.
func TestPasswordsAreNeverPrinted(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pa55"
	c, err := daemon.FromLookup(env{"WARREN_AMQP_URL": "amqp://app:" + secret + "@rabbit:5672/,http://app:" + secret + "@bad/"}.lookup)
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(&help)
	c.RegisterFlags(fs)
	fs.PrintDefaults()
	verr := c.Validate()
	if verr == nil {
		t.Fatal("an http:// broker URL validated")
	}
	for what, text := range map[string]string{
		"--help":      help.String(),
		"String":      c.String(),
		"%v":          fmt.Sprintf("%v", c),
		"%+v":         fmt.Sprintf("%+v", c),
		"%#v":         fmt.Sprintf("%#v", c),
		"Validate":    verr.Error(),
		"flag String": fs.Lookup("url").Value.String(),
	} {
		if strings.Contains(text, secret) {
			t.Errorf("%s shows the password: %s", what, text)
		}
		if !strings.Contains(text, "xxxxx") {
			t.Errorf("%s does not show the redacted URL: %s", what, text)
		}
	}
}

// TestValidateReportsEveryProblem: one error lists them all.
func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := daemon.Config{
		URLs:            []string{"rabbit:5672"},
		HTTPAddr:        "8080",
		ShutdownTimeout: -time.Second,
		LogLevel:        "loud",
		LogFormat:       "xml",
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	for _, want := range []string{"rabbit:5672", `"8080"`, "-1s", `"loud"`, `"xml"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not mention %s:\n%v", want, err)
		}
	}
	c = daemon.DefaultConfig()
	c.URLs = nil
	if err := c.Validate(); err == nil {
		t.Error("a config without URLs validated")
	}
	c = daemon.DefaultConfig()
	c.HTTPAddr = ""
	if err := c.Validate(); err != nil {
		t.Errorf("an empty HTTP address (no server): %v", err)
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		format string
		json   bool
	}{
		{daemon.LogAuto, true}, // a buffer is not a terminal
		{daemon.LogJSON, true},
		{daemon.LogConsole, false},
	} {
		t.Run(tc.format, func(t *testing.T) {
			c := daemon.DefaultConfig()
			c.LogFormat = tc.format
			var out bytes.Buffer
			log, err := c.Logger(&out)
			if err != nil {
				t.Fatal(err)
			}
			log.Debug().Msg("hidden at info level")
			log.Info().Str("queue", "q").Msg("hello")
			line := strings.TrimSpace(out.String())
			if strings.Contains(line, "hidden") || strings.Count(line, "\n") != 0 {
				t.Errorf("want one line at info level, got:\n%s", line)
			}
			var entry map[string]any
			isJSON := json.Unmarshal([]byte(line), &entry) == nil
			if isJSON != tc.json {
				t.Errorf("JSON %v, want %v: %s", isJSON, tc.json, line)
			}
			if !strings.Contains(line, "hello") || !strings.Contains(line, "queue") {
				t.Errorf("the line lacks the message or its field: %s", line)
			}
		})
	}
	c := daemon.DefaultConfig()
	c.LogLevel = "verbose"
	if _, err := c.Logger(&bytes.Buffer{}); err == nil {
		t.Error("Logger accepted the level verbose")
	}
}
