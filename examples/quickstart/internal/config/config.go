// Package config holds the flags the quickstart's producer and worker
// share, each with an environment fallback, as the warren CLI has them.
// The worker takes its connection flags from package daemon.
package config

import (
	"flag"
	"os"
	"strings"

	"github.com/warrenmq/warren/broker"
)

// DefaultTopology is the quickstart's topology file, relative to the root
// of the repository, where `make demo` runs the programs.
const DefaultTopology = "examples/quickstart/topology.yaml"

// Flags are the connection flags.
type Flags struct {
	url string
	// Topology is the topology file.
	Topology string
}

// Register adds --url and -f/--file to fs, named as in the warren CLI.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	// No default is shown for --url: AMQP_URL may hold a password.
	fs.StringVar(&f.url, "url", "", "broker URL(s), comma-separated, tried in turn (default: env AMQP_URL, else "+broker.RedactURL(broker.DefaultURL)+")")
	RegisterTopology(fs, &f.Topology)
	return f
}

// RegisterTopology adds -f/--file to fs, writing into path: the topology
// file, by default WARREN_TOPOLOGY, else DefaultTopology. The worker,
// whose connection flags come from package daemon, registers only this.
func RegisterTopology(fs *flag.FlagSet, path *string) {
	topo := os.Getenv("WARREN_TOPOLOGY")
	if topo == "" {
		topo = DefaultTopology
	}
	fs.StringVar(path, "file", topo, "topology file (env WARREN_TOPOLOGY)")
	fs.StringVar(path, "f", topo, "shorthand for --file")
}

// URLs returns the broker URLs: those of --url, else of AMQP_URL, else
// broker.DefaultURL.
func (f *Flags) URLs() []string {
	s := f.url
	if s == "" {
		s = os.Getenv("AMQP_URL")
	}
	var urls []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	if len(urls) == 0 {
		urls = []string{broker.DefaultURL}
	}
	return urls
}
