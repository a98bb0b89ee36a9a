package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/warrenmq/warren/dashboard"
	"github.com/warrenmq/warren/topology"
)

// envUIToken is the environment fallback of `warren ui --token`.
const envUIToken = "WARREN_UI_TOKEN"

func newUICmd(g *globals) *cobra.Command {
	var listen, token, path, mgmtURL, prefix string
	var readOnly bool
	cmd := &cobra.Command{
		Use:   "ui [--listen ADDR] [--token TOKEN] [-f FILE] [--read-only]",
		Short: "Serve the web dashboard: queues, dead letters, workers and the topology",
		Long: `Serve warren's web dashboard until interrupted (SIGINT or SIGTERM).

It shows every work queue's counts and rates, the dead letters (to read,
replay or discard), the workers connected, and, with -f, the topology file
and how the broker drifts from it. It reads the broker through the
management HTTP API and never consumes a work queue.

It listens on 127.0.0.1:8080 by default. To listen beyond loopback it needs
a token (--token, env ` + envUIToken + `), asked of every request as
"Authorization: Bearer TOKEN" or given once on its login page.
--read-only refuses every action that changes the broker.

The address it serves on is printed first (with --listen 127.0.0.1:0, the
port the system chose).`,
		Example: `  warren ui -f topology.yaml
  WARREN_UI_TOKEN=$(openssl rand -hex 16) warren ui --listen :8080 --read-only`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{noDeadline: "a server"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if token == "" {
				token = os.Getenv(envUIToken)
			}
			if err := checkListen(listen, token); err != nil {
				return err
			}
			var t *topology.Topology
			if path != "" {
				var err error
				if t, err = g.loadTopology(path); err != nil {
					return err
				}
			}
			if mgmtURL == "" {
				mgmtURL = os.Getenv("WARREN_MANAGEMENT_URL")
			}
			if mgmtURL == "" && g.ctx != nil {
				mgmtURL = g.ctx.ManagementURL
			}
			d, err := dashboard.New(dashboard.Options{
				URLs: g.brokerURLs(), ManagementURL: mgmtURL, Topology: t, TopologyPath: path,
				ReadOnly: readOnly, Token: token, Prefix: prefix, Logger: g.logger(),
			})
			if err != nil {
				return usageError("%w", err)
			}
			defer d.Close()
			return serveUI(cmd.Context(), g, listen, prefix, d)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on; beyond loopback it needs --token")
	cmd.Flags().StringVar(&token, "token", "", "token every request must carry (env "+envUIToken+"); required beyond loopback")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "refuse every action that changes the broker")
	cmd.Flags().StringVar(&prefix, "prefix", "", "path to serve the dashboard under, as /ui (behind a proxy)")
	topologyFlag(cmd, &path)
	managementFlag(cmd, &mgmtURL)
	return cmd
}

// checkListen refuses an address beyond loopback without a token.
func checkListen(listen, token string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return usageError("--listen %q: want HOST:PORT, as 127.0.0.1:8080: %v", listen, err)
	}
	if token != "" || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usageError("--listen %s serves the dashboard beyond this machine: pass --token (or set %s) so that it asks for one, or listen on loopback (--listen 127.0.0.1:PORT)", listen, envUIToken)
}

// serveUI serves d on listen until ctx ends, then shuts the server down,
// letting the requests under way finish for a few seconds.
func serveUI(ctx context.Context, g *globals, listen, prefix string, d http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another server there? pass another --listen)", listen, err)
	}
	h := d
	if prefix != "" {
		mux := http.NewServeMux()
		mux.Handle(prefix+"/", d)
		mux.Handle("/{$}", http.RedirectHandler(prefix+"/", http.StatusSeeOther))
		h = mux
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1) // the one answer of Serve, read below
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(g.stdout, "warren ui: serving http://%s%s/\n", hostForURL(ln.Addr().String()), prefix)
	select {
	case err := <-served:
		return fmt.Errorf("serving the dashboard: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-served // http.ErrServerClosed once Shutdown began
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("stopping the dashboard: %w", err)
	}
	return nil
}

// hostForURL shows an address that listens everywhere (0.0.0.0, [::]) as
// localhost, which a browser on this machine can open.
func hostForURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
