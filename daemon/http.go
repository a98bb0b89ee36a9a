package daemon

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/warrenmq/warren/internal/logfield"
)

// server is the daemon's HTTP server: probes and metrics.
type server struct {
	http   *http.Server
	paths  []string
	failed chan error // Serve's error, if it fails; buffer 1: sent at most once
}

// serve starts serving on ln in a goroutine counted by wg. The goroutine
// ends when the server is shut down or closed.
func (d *Daemon) serve(ln net.Listener, wg *sync.WaitGroup) *server {
	mux := http.NewServeMux()
	paths := []string{LivePath, ReadyPath}
	mux.HandleFunc("GET "+LivePath, func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET "+ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		writeText(w, http.StatusOK, d.status())
	})
	if g := d.opts.gatherer; g != nil {
		mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(g, promhttp.HandlerOpts{
			ErrorLog:      promLogger{d.opts.log},
			ErrorHandling: promhttp.ContinueOnError,
		}))
		paths = append(paths, MetricsPath)
	}
	for _, m := range d.opts.mounts {
		mux.Handle(m.prefix+"/", m.h)
		mux.Handle(m.prefix, http.RedirectHandler(m.prefix+"/", http.StatusMovedPermanently))
		paths = append(paths, m.prefix+"/")
	}
	s := &server{
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          stdlog.New(logWriter{d.opts.log}, "", 0),
		},
		paths:  paths,
		failed: make(chan error, 1),
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("daemon: http server on %s: %w", ln.Addr(), err)
		}
	}()
	return s
}

// shutdown stops the server gracefully, letting the requests in progress
// finish for up to httpShutdownTimeout, then closes what is left.
func (s *server) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		_ = s.http.Close()
		return fmt.Errorf("daemon: http server shutdown: %w", err)
	}
	return nil
}

// close stops the server at once.
func (s *server) close() { _ = s.http.Close() }

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, text)
}

// logWriter sends the HTTP server's own messages (bad requests, TLS
// handshake errors) to the logger, at debug level: clients cause them.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	w.log.Debug().Str(logfield.Component, "http").Msg(msg)
	return len(p), nil
}

// promLogger reports errors met while gathering metrics.
type promLogger struct{ log zerolog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn().Str(logfield.Component, "metrics").Msg(fmt.Sprint(v...))
}
