package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

// CheckoutConfig configures the checkout-facing routes.
type CheckoutConfig struct {
	Store       *ledger.Store
	Producer    *kgo.Client // produces hold and policy entries to the ledger log
	Codec       *avro.Codec
	LedgerTopic string
	// HoldsTopic takes hold requests and releases to the owners of their
	// ledger partitions, which decide them. Empty: they go on the ledger
	// topic and the fold decides them (the way before the holds topic).
	HoldsTopic string
	// Local, when set, answers location lookups of the ledger partitions
	// this process folds from the folder's memory, before Redis is asked.
	Local  LocalLookup
	Groups map[string][]string
	Rules  atp.ChannelRules
	Supply atp.SupplyPolicy
	// HoldTimeout bounds the wait for a hold decision. Default 5s.
	HoldTimeout time.Duration
	// OwnHoldsFor is how long lookups insist on seeing the holds this
	// instance was answered: the lookup cache's max age, after which no
	// cached answer predates them. Default 1s.
	OwnHoldsFor time.Duration
	// InstanceID names this API instance's decision channel. Required.
	InstanceID string
	// Keys maps API tokens to scopes; empty allows every request.
	Keys map[string][]string
	// RateLimit is requests/s per key (per client address without keys),
	// with bursts of twice that; 0: off.
	RateLimit float64
	// FailedAuthLimit is how many missing or unknown keys a client address
	// may send in a burst; they come back at that many a minute, and until
	// one has, the address gets 429 whatever key it sends. Default 10.
	FailedAuthLimit int
	// MaxClients bounds every table kept per client address; the least
	// recently seen address is forgotten first. Default 10000.
	MaxClients int
	Now        func() time.Time
	Logger     *slog.Logger
	// Registry receives the hold metrics; nil: not registered.
	Registry prometheus.Registerer
	// Reconciler serves reconciliation runs; nil: no such routes.
	Reconciler *reconcile.Reconciler
}

// LocalLookup answers a lookup of a position from the memory of the
// process that folds it (processors.Folder), or says it cannot.
type LocalLookup interface {
	Lookup(sku, loc string, nowMs int64) (ledger.LookupResult, bool)
}

// Checkout serves availability lookups, batch queries, holds, policies and
// positions.
type Checkout struct {
	cfg    CheckoutConfig
	log    *slog.Logger
	now    func() time.Time
	waiter *waiter
	own    *ownWrites
	// rulesText is cfg.Rules as hold entries carry them.
	rulesText string

	keys      []*apiKey
	failures  *clients // failed authentications per client address
	perClient *clients // rate limit per client address without keys; nil: off

	holdDecisions *prometheus.CounterVec
	holdRoundTrip prometheus.Histogram
}

const (
	maxQueryLines = 1000
	maxHoldLines  = 100
	maxQuantity   = 1_000_000_000
)

// validID runs for every line of every batch query: events.ValidID has no
// regexp.
func validID(v string) bool { return events.ValidID(v) }

// NewCheckout builds the checkout routes; Register adds them to a server and
// Run must run for holds to get their decisions.
func NewCheckout(cfg CheckoutConfig) *Checkout {
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OwnHoldsFor <= 0 {
		cfg.OwnHoldsFor = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FailedAuthLimit <= 0 {
		cfg.FailedAuthLimit = 10
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	ch := &Checkout{cfg: cfg, log: cfg.Logger, now: cfg.Now,
		keys:     newAPIKeys(cfg.Keys, cfg.RateLimit),
		failures: newClients(cfg.MaxClients, rate.Limit(float64(cfg.FailedAuthLimit)/60), cfg.FailedAuthLimit),
		holdDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "stockflow_hold_decisions_total",
			Help: "Hold requests by outcome: held, rejected, timeout."}, []string{"outcome"}),
		holdRoundTrip: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "stockflow_hold_roundtrip_seconds",
			Help:    "POST /v1/holds from produce to the ledger's decision.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
	}
	if cfg.RateLimit > 0 {
		ch.perClient = newClients(cfg.MaxClients, rate.Limit(cfg.RateLimit), burst(cfg.RateLimit))
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(ch.holdDecisions, ch.holdRoundTrip)
	}
	ch.own = newOwnWrites(cfg.OwnHoldsFor)
	ch.rulesText = cfg.Rules.String()
	ch.waiter = newWaiter(cfg.Store.Client(), cfg.Store.Keys().HoldAnswers(cfg.InstanceID), cfg.Logger,
		func(sku, loc string, version int64) { ch.own.saw(sku, loc, version, ch.now()) })
	return ch
}

// Run listens for hold decisions until ctx ends.
func (ch *Checkout) Run(ctx context.Context) error { return ch.waiter.run(ctx) }

// Register adds the routes to s.
func (ch *Checkout) Register(s *Server) {
	if len(ch.cfg.Keys) == 0 {
		ch.log.Warn("no API keys configured: every request is allowed (development only)")
	}
	// The middleware goes on each route rather than on a /v1 group: echo
	// answers every unrouted path under a group with middleware 404, so a
	// wrong method would never get its 405.
	who := ch.guard()
	guard := func(need string) []echo.MiddlewareFunc {
		return []echo.MiddlewareFunc{who, scope(need), checkCorrelation}
	}
	s.get("/v1/availability/:sku", ch.availability, guard("read")...)
	s.e.POST("/v1/availability/query", ch.query, guard("read")...)
	s.e.POST("/v1/holds", ch.placeHold, guard("hold")...)
	s.e.DELETE("/v1/holds/:hold_id", ch.releaseHold, guard("hold")...)
	s.e.PUT("/v1/policies/:sku/:location", ch.putPolicy, guard("admin")...)
	s.get("/v1/positions/:sku", ch.positions, guard("read")...)
	s.get("/v1/orders/:order_id/commitments", ch.orderCommitments, guard("read")...)
	ch.registerReconciliations(s, guard)
}

// pathID is a path parameter, unescaped once, that must be an id.
func pathID(c echo.Context, name string) (string, error) {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return "", badRequest(name, "is not a valid percent-encoded path segment")
	}
	return v, checkID(name, v)
}

func checkID(field, v string) error {
	if !validID(v) {
		return badRequest(field, fmt.Sprintf("%s is not 1-64 characters of [A-Za-z0-9._-]", excerpt(v)))
	}
	return nil
}

// correlationHeader carries a client's correlation id into the ledger
// entries a request produces and into its trace.
const correlationHeader = "X-Correlation-Id"

// validCorrelation says whether v is 1 to 128 printable ASCII characters
// other than |, which the ledger's lineage uses as a separator.
func validCorrelation(v string) bool {
	if len(v) == 0 || len(v) > 128 {
		return false
	}
	for i := range len(v) {
		if b := v[i]; b < '!' || b > '~' || b == '|' {
			return false
		}
	}
	return true
}

// checkCorrelation refuses a request whose correlation id would be lost or
// mangled on the way: a client that sends one relies on finding it again.
func checkCorrelation(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		vs := c.Request().Header.Values(correlationHeader)
		switch {
		case len(vs) > 1:
			return badRequest(correlationHeader, "send one correlation id, not several")
		case len(vs) == 1 && !validCorrelation(vs[0]):
			return badRequest(correlationHeader, fmt.Sprintf("%s is not 1-128 printable ASCII characters other than |", excerpt(vs[0])))
		}
		return next(c)
	}
}

// correlationID is the request's correlation id, checked by checkCorrelation; nil when none was sent.
func correlationID(c echo.Context) *string {
	v := c.Request().Header.Get(correlationHeader)
	if v == "" {
		return nil
	}
	return &v
}

// produce writes ledger entries, keyed by SKU, and waits for the broker.
func (ch *Checkout) produce(ctx context.Context, es ...*events.LedgerEntry) error {
	_, err := ch.produceTo(ctx, ch.cfg.LedgerTopic, es)
	return err
}

// produceHolds writes hold requests and releases, keyed by SKU, to the
// holds topic, and waits for the broker. The records it returns say which
// partition each went to: the same number as its ledger partition.
func (ch *Checkout) produceHolds(ctx context.Context, es ...*events.LedgerEntry) ([]*kgo.Record, error) {
	if ch.cfg.HoldsTopic == "" {
		return ch.produceTo(ctx, ch.cfg.LedgerTopic, es)
	}
	return ch.produceTo(ctx, ch.cfg.HoldsTopic, es)
}

func (ch *Checkout) produceTo(ctx context.Context, topic string, es []*events.LedgerEntry) ([]*kgo.Record, error) {
	recs := make([]*kgo.Record, 0, len(es))
	for _, e := range es {
		b, err := ch.cfg.Codec.Encode(ctx, topic, e)
		if err != nil {
			return nil, fmt.Errorf("encode %s entry: %w", e.EntryType, err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(e.SKU), Value: b})
	}
	if err := ch.cfg.Producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("produce to %s: %w", topic, err)
	}
	return recs, nil
}

// unavailable is a 503 that tells the client when to try again.
func unavailable(c echo.Context, detail string) error {
	c.Response().Header().Set("Retry-After", "1")
	return &problemError{Problem{Type: "about:blank", Title: "temporarily unavailable", Status: http.StatusServiceUnavailable, Detail: detail}}
}

func str(s string) *string { return &s }
