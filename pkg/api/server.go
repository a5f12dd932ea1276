// Package api is Stockflow's HTTP server: the checkout-facing API and the
// operational endpoints (health, readiness, metrics).
//
// See docs/design.md §7.2 (holds), §8 (available to promise), §9 (the read
// path) and §16.3 (readiness); docs/api.md states the rules for clients.
package api

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/stockflow/stockflow/pkg/telemetry"
)

// openapiDoc describes every route; a test keeps it and the router in step.
//
//go:embed openapi.yaml
var openapiDoc []byte

// Check is one readiness dependency.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Config configures a Server.
type Config struct {
	Addr string
	// Checks run on every /readyz, concurrently, each bounded by CheckTimeout.
	Checks       []Check
	CheckTimeout time.Duration // default 2s
	// Grace bounds the graceful stop. Default 20s.
	Grace    time.Duration
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// BodyLimit caps request bodies; default 1 MiB.
	BodyLimit int64
	// ReadTimeout bounds reading a whole request, body included; a body
	// still arriving then is answered 408. Default 15s.
	ReadTimeout time.Duration
	// MaxHeaderBytes caps the request line and header fields together; a
	// larger request is answered 431. Default 64 KiB.
	MaxHeaderBytes int
	// TracerProvider traces every request; default none.
	TracerProvider trace.TracerProvider
	// TrustedProxies are the proxies whose X-Forwarded-For is believed: the
	// client is the nearest address in it that is not one of them. Default
	// none: the client is the connection's remote address.
	TrustedProxies []netip.Prefix
}

func (c *Config) setDefaults() {
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 20 * time.Second
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 15 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	e    *echo.Echo
	http *http.Server

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	tracer   trace.Tracer

	mu   sync.Mutex
	addr net.Addr
}

// New builds the server and registers its routes and metrics.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, e: echo.New(), tracer: cfg.TracerProvider.Tracer("github.com/stockflow/stockflow/pkg/api")}
	s.e.HideBanner = true
	s.e.HidePort = true
	s.e.HTTPErrorHandler = s.errorHandler
	s.e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stockflow_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "stockflow_http_request_duration_seconds", Help: "HTTP request latency by route pattern and method.",
		Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method"})
	cfg.Registry.MustRegister(s.requests, s.latency)

	s.e.Pre(escapedPath)
	s.e.Use(s.traceRequest, s.observe, s.recover, s.limitHeaders, s.limitBody)
	s.get("/healthz", s.healthz)
	s.get("/readyz", s.readyz)
	s.get("/metrics", echo.WrapHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	s.get("/openapi.yaml", func(c echo.Context) error {
		return c.Blob(http.StatusOK, "application/yaml", openapiDoc)
	})

	s.http = &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// The server's own limit can only answer in plain text, so it is
		// set well above MaxHeaderBytes and limitHeaders answers first.
		MaxHeaderBytes: 2 * cfg.MaxHeaderBytes,
	}
	return s
}

// Echo exposes the router so other packages can add their routes.
func (s *Server) Echo() *echo.Echo { return s.e }

// ipExtractor believes X-Forwarded-For only from the trusted proxies, and
// trusts nothing else: echo would otherwise trust loopback, link-local and
// private addresses by default.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// get serves a read-only route for GET and HEAD.
func (s *Server) get(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	s.e.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}

// escapedPath makes the router match the path as it was sent, still
// escaped, so that a path parameter is unescaped exactly once (by pathID).
// Left alone, echo matches the escaped form only when it differs from Go's
// own escaping of the decoded path: SKU%2D1 would reach a handler escaped
// and SKU%252D1 decoded once already.
func escapedPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		u.RawPath = u.EscapedPath()
		return next(c)
	}
}

func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		route = routeName(route)
		s.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Inc()
		s.latency.WithLabelValues(route, c.Request().Method).Observe(time.Since(start).Seconds())
		return nil
	}
}

// recover turns a panic in a handler into a logged 500 with no internals
// in the answer, instead of a dropped connection.
func (s *Server) recover(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.ErrorContext(c.Request().Context(), "handler panic", "route", c.Path(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = &problemError{Problem{Type: "about:blank", Title: http.StatusText(http.StatusInternalServerError), Status: http.StatusInternalServerError}}
			}
		}()
		return next(c)
	}
}

// routeName turns echo's /v1/availability/:sku into /v1/availability/{sku},
// the form the OpenAPI document uses.
func routeName(path string) string {
	if !strings.Contains(path, ":") {
		return path
	}
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if strings.HasPrefix(p, ":") {
			parts[i] = "{" + p[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// traceRequest starts a server span named by method and route pattern,
// continuing an incoming W3C traceparent.
func (s *Server) traceRequest(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		ctx := telemetry.Propagator.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		route = routeName(route)
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", req.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", req.URL.Path),
		}
		if cid := req.Header.Get(correlationHeader); validCorrelation(cid) {
			attrs = append(attrs, attribute.String("stockflow.correlation_id", cid))
		}
		ctx, span := s.tracer.Start(ctx, req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		return nil
	}
}

// limitHeaders answers 431 for a request whose request line and header
// fields together pass MaxHeaderBytes, as the http.Server would, but as a
// problem document. Only a header past twice the limit meets the
// http.Server's own limit and its plain-text 431.
func (s *Server) limitHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if n := headerBytes(c.Request()); n > s.cfg.MaxHeaderBytes {
			return &problemError{Problem{Type: "about:blank", Title: "request header fields too large", Status: http.StatusRequestHeaderFieldsTooLarge,
				Detail: fmt.Sprintf("the request line and header fields take %d bytes; the limit is %d", n, s.cfg.MaxHeaderBytes)}}
		}
		return next(c)
	}
}

// headerBytes is the size of r's request line and header fields as sent
// in HTTP/1.1.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2 + len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.cfg.BodyLimit {
			return &problemError{Problem{Type: "about:blank", Title: "request body too large", Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("the body limit is %d bytes", s.cfg.BodyLimit)}}
		}
		if req.Body != nil {
			req.Body = http.MaxBytesReader(c.Response(), req.Body, s.cfg.BodyLimit)
		}
		return next(c)
	}
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

type checkResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func (s *Server) readyz(c echo.Context) error {
	results := make([]checkResult, len(s.cfg.Checks))
	var wg sync.WaitGroup
	for i, ch := range s.cfg.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.CheckTimeout)
			defer cancel()
			results[i] = checkResult{Name: ch.Name, OK: true}
			if err := ch.Fn(ctx); err != nil {
				results[i] = checkResult{Name: ch.Name, Error: err.Error()}
			}
		}()
	}
	wg.Wait()
	status := http.StatusOK
	for _, r := range results {
		if !r.OK {
			status = http.StatusServiceUnavailable
		}
	}
	return c.JSON(status, map[string]any{"ready": status == http.StatusOK, "checks": results})
}

// Addr is the address the server listens on, once Run has bound it.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run serves until ctx ends, then stops gracefully within the grace period.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("http listen: %w", err)
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()
	s.log.Info("http listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Grace)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}
