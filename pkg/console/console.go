// Package console is the operations console served at /console: pipeline
// health, a SKU's story, today's changes of order lines' promises, the
// exception queue with replay, holds and reconciliation runs, as
// server-rendered pages with a little JavaScript.
//
// Every number a page shows about stock comes from the HTTP API itself:
// the console calls the API's handler in process, with the signed-in key,
// so a page and the API cannot disagree. The exception queue and the
// re-promises page read their topics instead: what failed, and how a
// promise moved, are not the API's to answer. Sign-in takes an API key
// (read scope sees, admin acts) and keeps, in an HttpOnly SameSite=Strict
// cookie, only a random session id, never the key; every form carries a
// CSRF token bound to that session.
//
// Sessions are kept in the memory of the instance that signed the user in
// (see sessions): signing out ends one at once, and so do 30 minutes
// unused or 12 hours in all. Several instances behind a load balancer each
// have their own: route a user's requests to one instance (session
// affinity), or the user signs in at each. A restart signs everyone out.
//
// Without API keys nobody signs in and everyone may act, so the console
// then answers only requests addressed to a loopback name (onlyLoopback).
//
// See docs/design.md §11.3 (replay, and the marks the console keeps) and
// §15.5 (its keys in Redis); docs/console.md describes the pages.
package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the console.
type Config struct {
	// API is the HTTP API's handler; the console's pages read it in process.
	API http.Handler
	// Keys are the API keys and their scopes (token -> scopes), as the API
	// has them; empty: authentication is off and everyone may act.
	Keys map[string][]string
	// Redis keeps the dead letters' states and the audit log, below Prefix.
	Redis  redis.UniversalClient
	Prefix string
	// JaegerURL is the Jaeger UI's address for trace links; empty: none.
	JaegerURL string
	// Locations lists the locations the ledger has a SKU at.
	Locations func(ctx context.Context, sku string) ([]string, error)
	// Groups are the distribution groups the API answers for.
	Groups map[string][]string
	// ReleaseHold releases a hold by its hold_id whoever placed it (an
	// admin's action); false when there is no such hold.
	ReleaseHold func(ctx context.Context, holdID string) (bool, error)
	// RunFresh says whether a reconciliation run can still be applied.
	RunFresh func(reconcile.Run) bool
	// Metrics is the process's Prometheus registry: the overview samples it
	// into a short history of its own.
	Metrics prometheus.Gatherer
	// Dead letters: the connection to the brokers (kafka.Conn) and the
	// topic to read them from, a producer to replay them to their source
	// topics, and the codec to decode them.
	Kafka    []kgo.Opt
	DLQTopic string
	Producer *kgo.Client
	Codec    *avro.Codec
	// Replay says where dead letters may be replayed to.
	Replay deadletter.ReplayTargets
	// CommitmentsTopic is where each change of an order line's promise is
	// published; the re-promises page reads today's, with the Kafka
	// connection and the codec above. Empty: the page says it cannot.
	CommitmentsTopic string
	// CommitmentsScan bounds the re-promises page's read: at most the
	// newest this many records of each partition since midnight UTC.
	// Default 2,000.
	CommitmentsScan int
	// SessionTTL is how long a sign-in lasts however busy, SessionIdle how
	// long it lasts unused, and MaxSessions how many this instance keeps
	// (past it, the least recently used end). Defaults 12h, 30m, 10,000.
	// A key has at most 20 of them: past that, its own least recently used
	// end, not another key's.
	SessionTTL  time.Duration
	SessionIdle time.Duration
	MaxSessions int
	// ScanTimeout bounds a dead-letter or re-promises listing's read of
	// its topic, well inside the HTTP server's write timeout; a listing
	// that runs out says so and shows what it read. Default 10s.
	ScanTimeout time.Duration
	// ReplayBudget bounds a confirmed class replay's work, well inside the
	// HTTP server's write timeout: past it, the replay stops between
	// batches, each written and marked, and the page says how many remain,
	// to confirm again. Default 20s.
	ReplayBudget time.Duration
	// PageSize is how many dead letters a page lists. Default 50.
	PageSize int
	Logger   *slog.Logger
	Now      func() time.Time
}

// Console serves the console's pages.
type Console struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	secret []byte         // signs CSRF tokens
	keys   map[string]key // by id
	// sessions are the sign-ins this instance made.
	sessions *sessions
	pages    map[string]*template.Template
	nav      []navItem
	hist     *history // the overview's short history of the process's metrics
	// signIns throttles failed sign-ins per client address.
	signIns *failures
	// scans bounds how many listings (dead letters, re-promises) read a
	// topic at once.
	scans chan struct{}
}

type key struct {
	id     string
	token  string
	scopes []string
}

type navItem struct{ Path, Title string }

// New returns the console.
func New(cfg Config) (*Console, error) {
	setDefaults(&cfg)
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, keys: map[string]key{}}
	c.hist = newHistory(cfg.Metrics, cfg.Logger)
	c.signIns = newFailures(10, time.Minute, 10000)
	c.sessions = newSessions(cfg.SessionTTL, cfg.SessionIdle, cfg.MaxSessions)
	c.scans = make(chan struct{}, 2)
	for tok, scopes := range cfg.Keys {
		d := sha256.Sum256([]byte(tok))
		id := hex.EncodeToString(d[:16])
		c.keys[id] = key{id: id, token: tok, scopes: scopes}
	}
	c.secret = make([]byte, 32)
	if _, err := rand.Read(c.secret); err != nil {
		return nil, err
	}
	c.nav = []navItem{{"/console", "Overview"}, {"/console/sku", "SKU"}, {"/console/commitments", "Re-promises"},
		{"/console/exceptions", "Exceptions"}, {"/console/holds", "Holds"}, {"/console/reconciliations", "Reconciliation"}}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	return c, nil
}

func setDefaults(cfg *Config) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = defaultSessionIdle
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.ScanTimeout <= 0 {
		cfg.ScanTimeout = defaultScanTimeout
	}
	if cfg.ReplayBudget <= 0 {
		cfg.ReplayBudget = defaultReplayBudget
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.CommitmentsScan <= 0 {
		cfg.CommitmentsScan = defaultCommitmentsScan
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "sf"
	}
}

func (c *Console) parseTemplates() error {
	layout, err := templateFS.ReadFile("templates/layout.html")
	if err != nil {
		return err
	}
	entries, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	c.pages = map[string]*template.Template{}
	for _, e := range entries {
		name := strings.TrimSuffix(strings.TrimPrefix(e, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		body, err := templateFS.ReadFile(e)
		if err != nil {
			return err
		}
		t, err := template.New("layout").Funcs(funcs).Funcs(template.FuncMap{"traceLink": c.traceLink}).Parse(string(layout))
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		if _, err := t.Parse(string(body)); err != nil {
			return fmt.Errorf("template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// Register adds the console's routes to e.
func (c *Console) Register(e *echo.Echo) {
	add := func(method, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
		e.Add(method, path, h, append([]echo.MiddlewareFunc{c.onlyLoopback}, m...)...)
	}
	static, _ := fs.Sub(staticFS, "static")
	add(http.MethodGet, "/console/static/*", echo.WrapHandler(http.StripPrefix("/console/static/", staticHandler(static))))
	add(http.MethodGet, "/console/login", c.loginPage)
	add(http.MethodPost, "/console/login", c.login)
	add(http.MethodPost, "/console/logout", c.logout, c.needUser)
	add(http.MethodGet, "/console", c.overview, c.needUser)
	add(http.MethodGet, "/console/sku", c.skuPage, c.needUser)
	add(http.MethodGet, "/console/commitments", c.commitmentsPage, c.needUser)
	add(http.MethodGet, "/console/holds", c.holdsPage, c.needUser)
	add(http.MethodPost, "/console/holds/release", c.releaseHold, c.needUser, c.needAdmin)
	add(http.MethodGet, "/console/reconciliations", c.runsPage, c.needUser)
	add(http.MethodGet, "/console/reconciliations/:id", c.runPage, c.needUser)
	add(http.MethodPost, "/console/reconciliations/:id/apply", c.applyRun, c.needUser, c.needAdmin)
	add(http.MethodGet, "/console/exceptions", c.exceptionsPage, c.needUser)
	// A class-wide replay goes through a confirmation of its targets
	// (replayClassSteps); one dead letter goes at once.
	add(http.MethodPost, "/console/exceptions/replay", c.replay, c.needUser, c.needAdmin, c.replayClassSteps)
	add(http.MethodPost, "/console/exceptions/discard", c.discard, c.needUser, c.needAdmin)
}

func staticHandler(f fs.FS) http.Handler {
	h := http.FileServer(http.FS(f))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// user is who a request is from.
type user struct {
	key     key // zero when authentication is off
	session string
	Admin   bool
	Anon    bool // authentication is off
	Label   string
}

const (
	cookieName = "stockflow_console"
	ctxUser    = "console.user"
	// anonSession is everyone's session when authentication is off.
	anonSession = "anon"
)

func (c *Console) sign(payload string) string {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *Console) userOf(r *http.Request) (*user, bool) {
	if len(c.keys) == 0 {
		return &user{Admin: true, Anon: true, Label: "everyone (authentication is off)", session: anonSession}, true
	}
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil, false
	}
	id, ok := c.sessions.use(ck.Value, c.now())
	if !ok {
		return nil, false
	}
	k, ok := c.keys[id]
	if !ok || !canSignIn(k.scopes) {
		return nil, false
	}
	u := &user{key: k, session: ck.Value, Admin: slices.Contains(k.scopes, "admin"), Label: "key " + k.id[:8] + " (" + strings.Join(k.scopes, ", ") + ")"}
	return u, true
}

// csrf is the form token of a session.
func (c *Console) csrf(u *user) string { return c.sign("csrf|" + u.session) }

func (c *Console) needUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ec echo.Context) error {
		u, ok := c.userOf(ec.Request())
		if !ok {
			if ec.Request().Method != http.MethodGet {
				return c.forbidden(ec, "sign in first")
			}
			return ec.Redirect(http.StatusSeeOther, "/console/login?next="+url.QueryEscape(ec.Request().URL.RequestURI()))
		}
		ec.Set(ctxUser, u)
		if ec.Request().Method == http.MethodPost {
			if why := c.checkForm(ec, u); why != "" {
				return c.forbidden(ec, why)
			}
		}
		ec.Response().Header().Set("Cache-Control", "no-store")
		return next(ec)
	}
}

// checkForm says why a POST is not from one of our own forms, or "": its
// origin must be this host and its CSRF token the session's.
func (c *Console) checkForm(ec echo.Context, u *user) string {
	r := ec.Request()
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		ou, err := url.Parse(o)
		if err != nil || ou.Host != r.Host {
			return "the form was sent from another site"
		}
	}
	tok := ec.FormValue("csrf")
	if subtle.ConstantTimeCompare([]byte(tok), []byte(c.csrf(u))) != 1 {
		return "the form has expired or did not come from the console: reload the page and try again"
	}
	return ""
}

func (c *Console) needAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(ec echo.Context) error {
		if u := ec.Get(ctxUser).(*user); !u.Admin {
			return c.forbidden(ec, "this action needs an admin key")
		}
		return next(ec)
	}
}

func (c *Console) forbidden(ec echo.Context, why string) error {
	return c.render(ec, http.StatusForbidden, "error", "Not allowed", map[string]any{"Message": why})
}

// page is what every page's template gets.
type page struct {
	Title   string
	Path    string
	User    *user
	CSRF    string
	Nav     []navItem
	Flash   string
	Jaeger  string
	Data    any
	Now     time.Time
	AuthOff bool
}

func (c *Console) render(ec echo.Context, status int, name, title string, data any) error {
	t := c.pages[name]
	if t == nil {
		return fmt.Errorf("no template %s", name)
	}
	p := page{Title: title, Path: ec.Request().URL.Path, Nav: c.nav, Data: data, Jaeger: c.cfg.JaegerURL, Now: c.now().UTC(),
		AuthOff: len(c.keys) == 0, Flash: c.flash(ec)}
	if u, ok := ec.Get(ctxUser).(*user); ok {
		p.User, p.CSRF = u, c.csrf(u)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("render console page", "page", name, "err", err)
		return err
	}
	h := ec.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	return ec.HTMLBlob(status, buf.Bytes())
}

func (c *Console) loginPage(ec echo.Context) error {
	if len(c.keys) == 0 {
		return ec.Redirect(http.StatusSeeOther, "/console")
	}
	return c.render(ec, http.StatusOK, "login", "Sign in", map[string]any{"Next": safeNext(ec.QueryParam("next"))})
}

// safeNext keeps a redirect inside the console.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/console") || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") {
		return "/console"
	}
	return n
}

func (c *Console) login(ec echo.Context) error {
	if len(c.keys) == 0 {
		return ec.Redirect(http.StatusSeeOther, "/console")
	}
	// The sign-in form has no session to bind a token to: its origin must be
	// this host (a sandboxed frame's "null" included).
	if o := ec.Request().Header.Get("Origin"); o != "" {
		if ou, err := url.Parse(o); err != nil || ou.Host != ec.Request().Host {
			return c.forbidden(ec, "the form was sent from another site")
		}
	}
	if d := c.signIns.wait(ec.RealIP(), c.now()); d > 0 {
		ec.Response().Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		return c.render(ec, http.StatusTooManyRequests, "login", "Sign in", map[string]any{"Next": safeNext(ec.FormValue("next")),
			"Error": "Too many failed sign-ins from this address: wait a minute and try again."})
	}
	// The key from the form's body only: one in the URL would reach access
	// logs and browser history.
	tok := strings.TrimSpace(ec.Request().PostFormValue("key"))
	d := sha256.Sum256([]byte(tok))
	var found *key
	for id, k := range c.keys {
		kd := sha256.Sum256([]byte(k.token))
		if subtle.ConstantTimeCompare(d[:], kd[:]) == 1 {
			kk := c.keys[id]
			found = &kk
		}
	}
	next := safeNext(ec.FormValue("next"))
	if found == nil || tok == "" {
		c.signIns.fail(ec.RealIP(), c.now())
		c.log.Warn("console sign-in refused", "client", ec.RealIP())
		return c.render(ec, http.StatusUnauthorized, "login", "Sign in", map[string]any{"Next": next, "Error": "That key is not one of this deployment's API keys."})
	}
	if !canSignIn(found.scopes) {
		c.log.Warn("console sign-in refused: the key has neither the read nor the admin scope", "client", ec.RealIP(), "key", found.id[:8])
		return c.render(ec, http.StatusForbidden, "login", "Sign in", map[string]any{"Next": next,
			"Error": "That key may not read the console: it needs the read or the admin scope."})
	}
	id, err := c.sessions.start(found.id, c.now())
	if err != nil {
		return err
	}
	ec.SetCookie(&http.Cookie{Name: cookieName, Value: id, Path: "/console", Expires: c.now().Add(c.cfg.SessionTTL),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: ec.Scheme() == "https"})
	// Sign-ins and sign-outs go to the process log only: the audit list in
	// Redis keeps the last 10,000 actions, and a read key signing in again
	// and again must not push them out.
	c.log.Info("console sign-in", "who", "key "+found.id[:8], "client", ec.RealIP())
	return ec.Redirect(http.StatusSeeOther, next)
}

// logout ends the session here, on the server, and clears the cookie: the
// cookie's value no longer signs anyone in, wherever it was copied to.
func (c *Console) logout(ec echo.Context) error {
	u := ec.Get(ctxUser).(*user)
	if !u.Anon {
		c.sessions.end(u.session)
		c.log.Info("console sign-out", "who", u.Label, "client", ec.RealIP())
	}
	ec.SetCookie(&http.Cookie{Name: cookieName, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: ec.Scheme() == "https"})
	return redirectDone(ec, "/console/login", nil, "signed-out")
}

// apiErr is an API answer that was not a success.
type apiErr struct {
	Status int
	Title  string
	Detail string
}

func (e *apiErr) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail) }

// api calls the HTTP API in process as the signed-in user and decodes its
// JSON answer into out.
func (c *Console) api(ec echo.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(ec.Request().Context(), method, path, rd)
	// The request is addressed as the console's was: without keys the API
	// answers only loopback names, as onlyLoopback has checked this one is,
	// and httptest's own (example.com) is not one.
	req.Host = ec.Request().Host
	req.RemoteAddr = ec.Request().RemoteAddr
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u, ok := ec.Get(ctxUser).(*user); ok && u.key.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.key.token)
	}
	rec := httptest.NewRecorder()
	c.cfg.API.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		var p struct{ Title, Detail string }
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		return &apiErr{Status: rec.Code, Title: p.Title, Detail: p.Detail}
	}
	if out == nil || rec.Code == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

// auditEntry is one action taken in the console.
type auditEntry struct {
	At     time.Time `json:"at"`
	Who    string    `json:"who"`
	Action string    `json:"action"`
	What   string    `json:"what"`
}

func (c *Console) auditKey() string { return ledger.NewKeys(c.cfg.Prefix).ConsoleAudit() }

// audit records who did what, in the log and in Redis (the newest 10,000).
func (c *Console) audit(ctx context.Context, u *user, action, what string) {
	e := auditEntry{At: c.now().UTC(), Who: u.Label, Action: action, What: what}
	c.log.Info("console action", "who", e.Who, "action", action, "what", what)
	if c.cfg.Redis == nil {
		return
	}
	b, _ := json.Marshal(e)
	pipe := c.cfg.Redis.Pipeline()
	pipe.LPush(ctx, c.auditKey(), b)
	pipe.LTrim(ctx, c.auditKey(), 0, 9999)
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Warn("console audit not recorded in Redis", "err", err)
	}
}

// recentAudit returns the newest n audit entries.
func (c *Console) recentAudit(ctx context.Context, n int64) []auditEntry {
	if c.cfg.Redis == nil {
		return nil
	}
	raw, err := c.cfg.Redis.LRange(ctx, c.auditKey(), 0, n-1).Result()
	if err != nil {
		return nil
	}
	out := make([]auditEntry, 0, len(raw))
	for _, r := range raw {
		var e auditEntry
		if json.Unmarshal([]byte(r), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// canSignIn says whether a key with scopes may use the console: it shows
// what the API serves to the read scope, so a key that may only place holds
// may not.
func canSignIn(scopes []string) bool {
	return slices.Contains(scopes, "read") || slices.Contains(scopes, "admin")
}
