// Package config holds the flags the quickstart's producer and worker
// share, each with an environment fallback, named as the warren CLI and
// package daemon name them. The worker takes its connection flags from
// package daemon.
package config

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/warrenmq/warren/broker"
	"github.com/warrenmq/warren/daemon"
)

// DefaultTopology is the quickstart's topology file, relative to the root
// of the repository, where `make demo` runs the programs.
const DefaultTopology = "examples/quickstart/topology.yaml"

// Flags are the connection flags.
type Flags struct {
	urls []string
	// Topology is the topology file.
	Topology string
}

// Register adds --url and -f/--file to fs, named as in the warren CLI.
func Register(fs *pflag.FlagSet) *Flags {
	f := &Flags{}
	// No default is shown for --url: WARREN_URL may hold a password.
	fs.StringSliceVar(&f.urls, daemon.FlagURL, nil, "broker URL(s), comma-separated, tried in turn (default: env "+daemon.EnvURL+", else "+broker.RedactURL(broker.DefaultURL)+")")
	RegisterTopology(fs, &f.Topology)
	return f
}

// RegisterTopology adds -f/--file to fs, writing into path: the topology
// file, by default WARREN_TOPOLOGY, else DefaultTopology. The worker,
// whose connection flags come from package daemon, registers only this.
func RegisterTopology(fs *pflag.FlagSet, path *string) {
	topo := os.Getenv("WARREN_TOPOLOGY")
	if topo == "" {
		topo = DefaultTopology
	}
	fs.StringVarP(path, "file", "f", topo, "topology file (env WARREN_TOPOLOGY)")
}

// URLs returns the broker URLs: those of --url, else of the environment
// as a worker daemon reads it (daemon.EnvURLs: WARREN_URL, else a
// deprecated name, with a warning), else broker.DefaultURL.
func (f *Flags) URLs() []string {
	if len(f.urls) > 0 {
		return f.urls
	}
	if urls := daemon.EnvURLs(os.LookupEnv, os.Stderr); len(urls) > 0 {
		return urls
	}
	return []string{broker.DefaultURL}
}
