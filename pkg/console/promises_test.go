package console

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/api"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
)

func ptr[T any](v T) *T { return &v }

// foldPromising folds entries of one SKU at L1 into the ledger as the
// folder does: each applied, then the location's lines promised again, and
// the state stored.
func foldPromising(t *testing.T, led *ledger.Store, sku string, es ...*events.LedgerEntry) {
	t.Helper()
	ctx := context.Background()
	states, err := led.Load(ctx, []string{sku})
	if err != nil {
		t.Fatal(err)
	}
	eng := ledger.NewEngine(ledger.Config{})
	for i, e := range es {
		e.SKU, e.Source, e.EventID = sku, "test", fmt.Sprint("e", i)
		if e.Location == nil {
			e.Location = ptr("L1")
		}
		if e.EventTime.IsZero() {
			e.EventTime = time.Now().Add(-time.Hour)
		}
		eng.Apply(states[0], e, 0, int64(i))
		states[0].Recommit("L1", atp.AllSupply)
	}
	if stored, err := led.Save(ctx, states); err != nil || !stored[0] {
		t.Fatalf("save: %v %v", stored, err)
	}
}

var orderRow = regexp.MustCompile(`(?s)<tr data-order="([^"]+)" data-line="[^"]+">(.*?)</tr>`)

// The SKU page shows each open order line's promise, most urgent first:
// the line no supply fully covers (backordered), then the one that waits
// for a purchase order, then the one stock on hand confirms, whatever the
// order they were taken in.
func TestSKUPageShowsEachOpenLinesPromise(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	led := ledger.New(rdb, ledger.Config{})
	due := time.Now().UTC().AddDate(0, 0, 5).Truncate(24 * time.Hour)
	taken := time.Now().Add(-time.Hour)
	orderLine := func(id string, q int64, minute int) *events.LedgerEntry {
		return &events.LedgerEntry{EntryType: events.EntryOrderLine, OrderID: ptr(id), LineID: ptr("1"), Quantity: q, Channel: ptr("web"),
			EventTime: taken.Add(time.Duration(minute) * time.Minute)}
	}
	// 30 on hand and 20 due: O1 is confirmed from stock, O2 takes the rest
	// of the stock and waits for 5 of the PO, O3 gets the PO's other 15
	// and 15 that nothing covers.
	foldPromising(t, led, "SKU-P",
		&events.LedgerEntry{EntryType: events.EntryReceipt, Quantity: 30},
		&events.LedgerEntry{EntryType: events.EntryPOLine, PONumber: ptr("PO-A"), POLine: ptr(int32(1)), Quantity: 20, ExpectedDate: &due},
		orderLine("O3", 30, 3), orderLine("O1", 15, 1), orderLine("O2", 20, 2))

	srv := api.New(api.Config{Addr: "127.0.0.1:0"})
	api.NewCheckout(api.CheckoutConfig{Store: led, InstanceID: "test", Supply: atp.AllSupply, Keys: map[string][]string{testRead: {"read"}}}).Register(srv)
	con, err := New(Config{API: srv.Echo(), Keys: map[string][]string{testRead: {"read"}}, Redis: rdb,
		Locations: func(context.Context, string) ([]string, error) { return []string{"L1"}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	con.Register(srv.Echo())
	e := srv.Echo()
	rec := do(e, http.MethodGet, "/console/sku?sku=SKU-P", nil, signIn(t, e, testRead))
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, apiAnswer.FindString(rec.Body.String()))
	}
	body := rec.Body.String()
	var order []string
	rows := map[string]string{}
	for _, m := range orderRow.FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
		rows[m[1]] = m[2]
	}
	if !slices.Equal(order, []string{"O3", "O2", "O1"}) {
		t.Fatalf("order lines in the order %v, want the backordered O3, the promised O2, the confirmed O1", order)
	}
	day := due.Format(time.DateOnly)
	for id, want := range map[string][]string{
		"O3": {`data-field="confirmed_now">0<`, "15 on " + day + "<", `data-field="unpromised">15<`, `badge backordered`},
		"O2": {`data-field="confirmed_now">15<`, ">5 on " + day + "<", `data-field="unpromised">0<`, `badge promised`},
		"O1": {`data-field="confirmed_now">15<`, `data-field="unpromised">0<`, `badge confirmed`},
	} {
		for _, w := range want {
			if !strings.Contains(rows[id], w) {
				t.Errorf("%s's row lacks %s:\n%s", id, w, rows[id])
			}
		}
	}
	if !strings.Contains(body, "1 backordered</strong> (15 covered by no supply)") {
		t.Error("the page does not sum up the backordered lines")
	}
}
