package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/cmd/warren/internal/table"
)

// cliConfig is the config file: named contexts, each a broker with its
// management API and topology, and the one in use.
type cliConfig struct {
	CurrentContext string                   `yaml:"current_context,omitempty"`
	Contexts       map[string]contextConfig `yaml:"contexts,omitempty"`
}

type contextConfig struct {
	URL           string `yaml:"url" json:"url"`
	ManagementURL string `yaml:"management_url,omitempty" json:"management_url,omitempty"`
	Topology      string `yaml:"topology,omitempty" json:"topology,omitempty"`
}

// configPath is WARREN_CONFIG, else $XDG_CONFIG_HOME/warren/config.yaml,
// else ~/.config/warren/config.yaml.
func configPath() (string, error) {
	if p := os.Getenv("WARREN_CONFIG"); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no config directory: %w; set WARREN_CONFIG to the config file's path", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "warren", "config.yaml"), nil
}

// loadConfig reads the config file; a missing one is an empty config.
// Unknown keys are errors, with their line.
func loadConfig(path string) (*cliConfig, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &cliConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &cliConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %s (keys: current_context, contexts: {NAME: {url, management_url, topology}})", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c, nil
}

// save writes the config to path, readable by its owner only (URLs may
// hold passwords), through a temporary file so that a failed write leaves
// the old one.
func (c *cliConfig) save(path string) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func (c *cliConfig) names() []string {
	names := make([]string, 0, len(c.Contexts))
	for n := range c.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookup returns the context name, with an error listing the known ones.
func (c *cliConfig) lookup(path, name string) (contextConfig, error) {
	ctx, ok := c.Contexts[name]
	if !ok {
		known := "none yet; add one with warren context add NAME --url URL"
		if len(c.Contexts) > 0 {
			known = strings.Join(c.names(), ", ")
		}
		return contextConfig{}, fmt.Errorf("no context %q in %s (contexts: %s)", name, path, known)
	}
	return ctx, nil
}

// useContext applies the context chosen by --context, else the config's
// current one, to what flags and the environment leave unset: the broker
// URL (brokerURLs), the management URL (mgmtClient) and the topology
// file of a command's -f. Flags win over the environment, the
// environment over the context, the context over the defaults.
func (g *globals) useContext(cmd *cobra.Command) error {
	path, err := configPath()
	if err != nil {
		if g.contextName != "" {
			return err
		}
		return nil
	}
	c, err := loadConfig(path)
	if err != nil {
		return err
	}
	name := g.contextName
	if name == "" {
		name = c.CurrentContext
	}
	if name == "" {
		return nil
	}
	ctx, err := c.lookup(path, name)
	if err != nil {
		return err
	}
	g.ctx = &ctx
	if ctx.Topology != "" {
		if f := cmd.Flags().Lookup("file"); f != nil && !f.Changed && f.Value.String() == "" {
			if err := f.Value.Set(ctx.Topology); err != nil {
				return err
			}
		}
	}
	return nil
}

func newContextCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "Name brokers in the config file and pick the one to use",
		Long: `Contexts name brokers: each has a broker URL, and optionally its management
API's URL and a topology file. They live in the config file: $WARREN_CONFIG,
else $XDG_CONFIG_HOME/warren/config.yaml, else ~/.config/warren/config.yaml,
written readable by its owner only.

The current context (warren context use NAME), or the one --context NAME
names for one command, gives what flags and environment variables leave
unset: --url and WARREN_URL win over its url, --management-url and
WARREN_MANAGEMENT_URL over its management_url, -f and WARREN_TOPOLOGY over
its topology.`,
		Example: `  warren context add prod --url amqps://ops:PASSWORD@mq.example.com/ --management-url https://mq.example.com:15671
  warren context use prod
  warren --context staging queue ls`,
	}
	cmd.AddCommand(newContextLsCmd(g), newContextUseCmd(g), newContextShowCmd(g), newContextAddCmd(g), newContextRmCmd(g))
	return cmd
}

// withConfig loads the config file for a context command.
func withConfig(fn func(path string, c *cliConfig, args []string) error) func(*cobra.Command, []string) error {
	return func(_ *cobra.Command, args []string) error {
		path, err := configPath()
		if err != nil {
			return err
		}
		c, err := loadConfig(path)
		if err != nil {
			return err
		}
		return fn(path, c, args)
	}
}

func redactContext(ctx contextConfig) contextConfig {
	ctx.URL = redactURLs(ctx.URL)
	if ctx.ManagementURL != "" {
		ctx.ManagementURL = broker.RedactURL(ctx.ManagementURL)
	}
	return ctx
}

func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = broker.RedactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func newContextLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the contexts; * marks the current one",
		Args:    cobra.NoArgs,
		RunE: withConfig(func(path string, c *cliConfig, _ []string) error {
			if g.json {
				out := struct {
					Version  int                      `json:"version"`
					File     string                   `json:"file"`
					Current  string                   `json:"current_context"`
					Contexts map[string]contextConfig `json:"contexts"`
				}{1, path, c.CurrentContext, map[string]contextConfig{}}
				for n, ctx := range c.Contexts {
					out.Contexts[n] = redactContext(ctx)
				}
				return writeJSON(g.stdout, out)
			}
			if len(c.Contexts) == 0 {
				fmt.Fprintf(g.stdout, "no contexts in %s; add one with warren context add NAME --url URL\n", path)
				return nil
			}
			tb := table.New("CURRENT", "NAME", "URL", "MANAGEMENT URL", "TOPOLOGY")
			for _, n := range c.names() {
				ctx := redactContext(c.Contexts[n])
				mark := ""
				if n == c.CurrentContext {
					mark = "*"
				}
				tb.Row(mark, n, ctx.URL, ctx.ManagementURL, ctx.Topology)
			}
			_, err := tb.WriteTo(g.stdout)
			return err
		}),
	}
}

func newContextUseCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "use NAME",
		Short: "Make a context the current one",
		Args:  cobra.ExactArgs(1),
		RunE: withConfig(func(path string, c *cliConfig, args []string) error {
			if _, err := c.lookup(path, args[0]); err != nil {
				return err
			}
			c.CurrentContext = args[0]
			if err := c.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "now using context %s\n", args[0])
			return nil
		}),
	}
}

func newContextShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show [NAME]",
		Short: "Show a context (the current one by default), its password masked",
		Args:  cobra.MaximumNArgs(1),
		RunE: withConfig(func(path string, c *cliConfig, args []string) error {
			name := c.CurrentContext
			if g.contextName != "" {
				name = g.contextName
			}
			if len(args) == 1 {
				name = args[0]
			}
			if name == "" {
				return fmt.Errorf("no current context in %s: name one, or pick one with warren context use NAME", path)
			}
			ctx, err := c.lookup(path, name)
			if err != nil {
				return err
			}
			ctx = redactContext(ctx)
			if g.json {
				return writeJSON(g.stdout, struct {
					Version int    `json:"version"`
					Name    string `json:"name"`
					contextConfig
				}{1, name, ctx})
			}
			fmt.Fprintf(g.stdout, "name: %s\nurl: %s\n", name, ctx.URL)
			if ctx.ManagementURL != "" {
				fmt.Fprintf(g.stdout, "management_url: %s\n", ctx.ManagementURL)
			}
			if ctx.Topology != "" {
				fmt.Fprintf(g.stdout, "topology: %s\n", ctx.Topology)
			}
			return nil
		}),
	}
}

func newContextAddCmd(g *globals) *cobra.Command {
	var ctx contextConfig
	var use bool
	cmd := &cobra.Command{
		Use:   "add NAME --url URL [--management-url URL] [--topology FILE]",
		Short: "Add a context, or replace one of the same name",
		Args:  cobra.ExactArgs(1),
		RunE: withConfig(func(path string, c *cliConfig, args []string) error {
			name := args[0]
			if strings.TrimSpace(name) == "" {
				return errors.New("the context's name is empty")
			}
			if ctx.URL == "" {
				return errors.New("--url is required: the broker's AMQP URL")
			}
			if c.Contexts == nil {
				c.Contexts = map[string]contextConfig{}
			}
			c.Contexts[name] = ctx
			if use || c.CurrentContext == "" {
				c.CurrentContext = name
			}
			if err := c.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "context %s saved in %s", name, path)
			if c.CurrentContext == name {
				fmt.Fprint(g.stdout, " (current)")
			}
			fmt.Fprintln(g.stdout)
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&ctx.URL, "url", "", "the broker's AMQP URL (several, comma-separated, are tried in turn)")
	f.StringVar(&ctx.ManagementURL, "management-url", "", "its management HTTP API's URL (default: derived from --url)")
	f.StringVar(&ctx.Topology, "topology", "", "the topology file of commands that take -f")
	f.BoolVar(&use, "use", false, "make it the current context (the first one added always is)")
	return cmd
}

func newContextRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Remove a context",
		Args:    cobra.ExactArgs(1),
		RunE: withConfig(func(path string, c *cliConfig, args []string) error {
			if _, err := c.lookup(path, args[0]); err != nil {
				return err
			}
			delete(c.Contexts, args[0])
			if c.CurrentContext == args[0] {
				c.CurrentContext = ""
			}
			if err := c.save(path); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "context %s removed\n", args[0])
			return nil
		}),
	}
}
