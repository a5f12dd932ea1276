//go:build integration

package service

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/atp"
	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// availabilityView is what the availability topic and GET /v1/availability
// both say of a position.
type availabilityView struct {
	OnHand, Reserved, Picked, Held int64
	SafetyStock, ReorderPoint      int64
	ATP, Shortfall, Version        int64
	Inbound                        []string // "date:quantity", earliest first
	Day                            string   // the as_of day
}

func (v availabilityView) String() string {
	return fmt.Sprintf("on_hand %d reserved %d picked %d held %d safety_stock %d reorder_point %d atp %d shortfall %d version %d inbound %v (as of %s)",
		v.OnHand, v.Reserved, v.Picked, v.Held, v.SafetyStock, v.ReorderPoint, v.ATP, v.Shortfall, v.Version, v.Inbound, v.Day)
}

// availabilityView reads GET /v1/availability for the position, with the
// inbound total of GET /v1/positions: the schedule leaves out what the
// supply policy does not count.
func (s *stack) availabilityView(t *testing.T, sku, loc string) (availabilityView, int64) {
	t.Helper()
	code, pos := s.call(t, "GET", "/v1/positions/"+sku+"?location="+loc, nil)
	if code != 200 {
		t.Fatalf("positions: %d %v", code, pos)
	}
	code, b := s.call(t, "GET", "/v1/availability/"+sku+"?location="+loc, nil)
	if code != 200 {
		t.Fatalf("availability: %d %v", code, b)
	}
	n := func(k string) int64 { return int64(b[k].(float64)) }
	v := availabilityView{OnHand: n("on_hand"), Reserved: n("reserved"), Picked: n("picked"), Held: n("held"),
		SafetyStock: n("safety_stock"), ReorderPoint: n("reorder_point"), ATP: n("atp"), Shortfall: n("shortfall"),
		Version: n("version"), Inbound: []string{}}
	for _, x := range b["inbound"].([]any) {
		m := x.(map[string]any)
		v.Inbound = append(v.Inbound, fmt.Sprintf("%s:%d", m["date"], int64(m["quantity"].(float64))))
	}
	asOf, err := time.Parse(time.RFC3339Nano, b["as_of"].(string))
	if err != nil {
		t.Fatal(err)
	}
	v.Day = asOf.UTC().Format(time.DateOnly)
	return v, int64(pos["inbound_total"].(float64))
}

// topicReader keeps the latest AvailabilityChanged per key, as a planning
// tool reading the compacted topic from the start would.
type topicReader struct {
	cl     *kgo.Client
	codec  *avro.Codec
	latest map[string]*events.AvailabilityChanged
}

func newTopicReader(t *testing.T, brokers []string, topic string) *topicReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	codec, err := events.NewCodec(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &topicReader{cl: cl, codec: codec, latest: map[string]*events.AvailabilityChanged{}}
}

// waitVersion reads the topic until key's latest record is at version or
// later, and returns what it says.
func (r *topicReader) waitVersion(t *testing.T, key string, version int64) availabilityView {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if a := r.latest[key]; a != nil && a.Version >= version {
			v := availabilityView{OnHand: a.OnHand, Reserved: a.Reserved, Picked: a.Picked, Held: a.Held,
				SafetyStock: a.SafetyStock, ReorderPoint: a.ReorderPoint, ATP: a.ATP, Shortfall: a.Shortfall,
				Version: a.Version, Inbound: []string{}, Day: a.AsOf.UTC().Format(time.DateOnly)}
			for _, b := range a.Inbound {
				v.Inbound = append(v.Inbound, fmt.Sprintf("%s:%d", b.Date.Format(time.DateOnly), b.Quantity))
			}
			return v
		}
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			got := "nothing"
			if a := r.latest[key]; a != nil {
				got = fmt.Sprintf("version %d", a.Version)
			}
			t.Fatalf("%s: the availability topic has %s, want version %d", key, got, version)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(rec *kgo.Record) {
			v, err := r.codec.Decode(ctx, rec.Value)
			if err != nil {
				t.Fatalf("decode %s: %v", rec.Key, err)
			}
			r.latest[string(rec.Key)] = v.(*events.AvailabilityChanged)
		})
	}
}

// The availability topic publishes the inbound schedule the API serves: a
// position with POs, an ASN, an acknowledgement that moves a date and a
// receipt that closes a line reads the same on the topic as from GET
// /v1/availability after every step, under the default supply policy and
// under one that counts firm supply only.
func TestAvailabilityTopicAgreesWithAPI(t *testing.T) {
	today := atp.Day(time.Now())
	day := func(d int) time.Time { return today.AddDate(0, 0, d) }
	on := func(d int, q int64) string { return fmt.Sprintf("%s:%d", day(d).Format(time.DateOnly), q) }
	meta := func(id string) events.Meta {
		return events.Meta{EventID: id, EventTime: time.Now().UTC().Add(-time.Minute), Source: "test"}
	}
	const sku, loc = "INB", "L1"

	type step struct {
		name    string
		send    func(s *stack)
		onHand  int64
		total   int64    // open supply, every kind
		inbound []string // the schedule under the case's policy
	}
	steps := func(firmOnly bool) []step {
		pick := func(all, firm []string) []string {
			if firmOnly {
				return firm
			}
			return all
		}
		return []step{
			{"two POs, one past its date", func(s *stack) {
				s.send(t, s.cfg.Topics.Inventory, sku, receiptEv("r-0", sku, loc, 10))
				if code, b := s.call(t, "PUT", "/v1/policies/"+sku+"/"+loc, map[string]any{"safety_stock": 4, "reorder_point": 60}); code != 202 {
					t.Fatalf("policy: %d %v", code, b)
				}
				s.send(t, s.cfg.Topics.Supplier, "PO-A", &events.PurchaseOrderReleased{Meta: meta("po-a"), PONumber: "PO-A", SupplierID: "SUP-1",
					Lines: []events.PurchaseOrderLine{
						{POLine: 1, SKU: sku, Location: loc, Quantity: 40, UoM: "EA", ExpectedDate: day(3)},
						{POLine: 2, SKU: sku, Location: loc, Quantity: 25, UoM: "EA", ExpectedDate: day(6)},
					}})
				s.send(t, s.cfg.Topics.Supplier, "PO-B", &events.PurchaseOrderReleased{Meta: meta("po-b"), PONumber: "PO-B", SupplierID: "SUP-2",
					Lines: []events.PurchaseOrderLine{{POLine: 1, SKU: sku, Location: loc, Quantity: 30, UoM: "EA", ExpectedDate: day(-2)}}})
			}, 10, 95, pick([]string{on(1, 30), on(3, 40), on(6, 25)}, []string{})},
			{"an ASN dates the overdue line", func(s *stack) {
				s.send(t, s.cfg.Topics.Supplier, "PO-B", &events.AdvanceShipNotice{Meta: meta("asn-b"), ASNID: "ASN-B", PONumber: "PO-B", SupplierID: "SUP-2",
					ETA: day(2).Add(10 * time.Hour), Lines: []events.AdvanceShipNoticeLine{{POLine: 1, SKU: sku, Quantity: 30, UoM: "EA"}}})
			}, 10, 95, pick([]string{on(2, 30), on(3, 40), on(6, 25)}, []string{on(2, 30)})},
			{"an acknowledgement moves a date", func(s *stack) {
				s.send(t, s.cfg.Topics.Supplier, "PO-A", &events.PurchaseOrderAcknowledged{Meta: meta("ack-a"), PONumber: "PO-A", SupplierID: "SUP-1",
					Lines: []events.AcknowledgedLine{
						{POLine: 1, Status: events.AckAccepted, Quantity: 40, ExpectedDate: day(5)},
						{POLine: 2, Status: events.AckAccepted, Quantity: 25, ExpectedDate: day(6)},
					}})
			}, 10, 95, pick([]string{on(2, 30), on(5, 40), on(6, 25)}, []string{on(2, 30), on(5, 40), on(6, 25)})},
			{"a receipt closes the shipped line", func(s *stack) {
				r := receiptEv("r-b", sku, loc, 30)
				po, line, asn := "PO-B", int32(1), "ASN-B"
				r.PONumber, r.POLine, r.ASNID = &po, &line, &asn
				s.send(t, s.cfg.Topics.Inventory, sku, r)
			}, 40, 65, []string{on(5, 40), on(6, 25)}},
		}
	}

	for _, tc := range []struct {
		name, policy string
		firmOnly     bool
	}{
		{"every kind of supply", "", false},
		{"firm supply only", "asn,acknowledged", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testenv.Config(t, 0)
			testenv.SharedRedis(t, &cfg)
			if tc.policy != "" {
				cfg.API.SupplyPolicy = tc.policy
			}
			s := startStack(t, cfg, Options{})
			topic := newTopicReader(t, cfg.Kafka.Brokers, cfg.Topics.Availability)
			for _, st := range steps(tc.firmOnly) {
				st.send(s)
				// The API first: once it shows the step, the topic must
				// catch up to the same version and say the same.
				var api availabilityView
				deadline := time.Now().Add(60 * time.Second)
				for {
					var total int64
					api, total = s.availabilityView(t, sku, loc)
					if api.OnHand == st.onHand && total == st.total && slices.Equal(api.Inbound, st.inbound) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: the API says %v with %d inbound in all, want on hand %d, %d inbound, schedule %v",
							st.name, api, total, st.onHand, st.total, st.inbound)
					}
					time.Sleep(50 * time.Millisecond)
				}
				got := topic.waitVersion(t, sku+"|"+loc, api.Version)
				if api.Day != today.Format(time.DateOnly) {
					t.Skipf("the test ran past midnight UTC: its dates are %s's", today.Format(time.DateOnly))
				}
				if !reflect.DeepEqual(got, api) {
					t.Fatalf("%s:\n topic %v\n api   %v", st.name, got, api)
				}
			}
		})
	}
}
