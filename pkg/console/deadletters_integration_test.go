//go:build integration

package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// answerWithin bounds each request of the test: well inside the HTTP
// server's 30 s write timeout, past which a browser would get no answer.
const answerWithin = 25 * time.Second

// A transaction left open on the real dead-letter topic does not freeze
// the exception queue or its actions: the page lists the dead letters
// committed before it, and a discard goes through, each well within the
// HTTP server's write timeout.
func TestOpenTransactionOnTheRealBrokerDoesNotFreezeTheExceptionQueue(t *testing.T) {
	cfg := testenv.Config(t, 0)
	rdb := testenv.SharedRedis(t, &cfg)
	ctx := context.Background()
	admc, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka)...)
	if err != nil {
		t.Fatal(err)
	}
	defer admc.Close()
	if _, err := kadm.NewClient(admc).CreateTopic(ctx, 1, 1, nil, cfg.Topics.DLQ); err != nil {
		t.Fatal(err)
	}
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	con, err := New(Config{Kafka: kafka.Conn(cfg.Kafka), DLQTopic: cfg.Topics.DLQ, Producer: admc, Codec: codec, Redis: rdb, Prefix: cfg.Redis.KeyPrefix,
		Replay: deadletter.ReplayTargets{Topics: cfg.Topics, Codec: codec}, Keys: map[string][]string{testAdmin: {"admin"}}, API: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	con.Register(e)
	ck := signIn(t, e, testAdmin)

	f := &dlqFixture{t: t, brokers: cfg.Kafka.Brokers}
	committed := []*kgo.Record{f.deadLetterRecord(0, "bad_magic", "A", []byte("a")), f.deadLetterRecord(0, "bad_magic", "B", []byte("b"))}
	for _, r := range committed {
		r.Topic = cfg.Topics.DLQ
	}
	if err := admc.ProduceSync(ctx, committed...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	open := f.deadLetterRecord(0, "bad_magic", "C", []byte("c"))
	open.Topic = cfg.Topics.DLQ
	transaction(t, cfg.Kafka.Brokers, open)

	status, body := within(t, e, ck, http.MethodGet, "/console/exceptions?state=all", nil)
	if status != http.StatusOK || !slices.Equal(listed(body), []string{"0:1", "0:0"}) {
		t.Fatalf("exception queue: %d, listed %v; want 200 listing the two committed dead letters", status, listed(body))
	}
	if strings.Contains(body, `id="dlq-cut"`) {
		t.Error("the listing ran out of time instead of stopping at the open transaction")
	}
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no csrf token")
	}
	status, _ = within(t, e, ck, http.MethodPost, "/console/exceptions/discard", url.Values{"dlq": {"0:0"}, "reason": {"test"}, "csrf": {m[1]}})
	if status != http.StatusSeeOther {
		t.Fatalf("discard: %d, want 303", status)
	}
	status, body = within(t, e, ck, http.MethodPost, "/console/exceptions/replay",
		url.Values{"class": {"bad_magic"}, "step": {"confirm"}, "csrf": {m[1]}})
	if status != http.StatusOK || !strings.Contains(body, `id="replay-nothing"`) {
		t.Fatalf("class replay confirmation: %d, want 200 saying nothing can go (bad_magic names no source topic of this deployment)", status)
	}
}

// within serves one request, which must be answered within answerWithin:
// the request's context ends then, and the handler with it.
func within(t *testing.T, e *echo.Echo, ck *http.Cookie, method, path string, form url.Values) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), answerWithin)
	defer cancel()
	var req *http.Request
	if form != nil {
		req = httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequestWithContext(ctx, method, path, nil)
	}
	req.AddCookie(ck)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if ctx.Err() != nil {
		t.Fatalf("%s %s was not answered within %s", method, path, answerWithin)
	}
	return rec.Code, rec.Body.String()
}
