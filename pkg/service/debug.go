package service

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/stockflow/stockflow/pkg/api"
)

// debugHandler answers Go's runtime profiles under /debug/pprof/ (not the
// command line: it may carry secrets given as flags), only to requests
// addressed to a loopback name, so that a page whose name is made to
// resolve to 127.0.0.1 cannot read them.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !api.LoopbackHost(r.Host) {
			http.Error(w, "profiles answer only at localhost, 127.0.0.1 or [::1]", http.StatusMisdirectedRequest)
			return
		}
		if r.URL.Path == "/debug/pprof/cmdline" {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveDebug answers profiles at addr until the stop it returns is
// called. It fails only when it cannot listen: a process asked for
// profiles that cannot give them should say so at start.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: debugHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "err", err)
		}
	}()
	log.Info("runtime profiles served", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
