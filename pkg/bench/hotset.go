package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/store"
)

// The hot set: lookups of a few positions that a stream of writes keeps
// changing, the case where a lookup cache can serve an answer Redis has
// already moved past. Its SKUs are the bench's own: the ingest stream never
// names them, so they are written straight through the ledger store (the
// fold's own code path) without a Kafka log behind them.
const (
	hotSKUs       = 1000
	hotLocation   = "DC-EAST"
	hotWriteRate  = 2000 // entries/s
	hotWriteEvery = 10 * time.Millisecond
	hotConns      = 64
	hotOnHand     = 1_000_000 // seeded stock; the ±1 adjustments never get near 0
	// hotMaxAnswers bounds the answers kept for the staleness check.
	hotMaxAnswers = 20_000_000
)

func hotSKU(i int) string { return fmt.Sprintf("HOT-%04d", i) }

// hotPick is the hot SKU the i-th lookup asks for.
func hotPick(i int) int {
	x := uint64(i) + 0x9e3779b97f4a7c15 // splitmix64
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return int((x ^ (x >> 31)) % hotSKUs)
}

// ack is a write the store acknowledged: the version it gave the position
// and when Apply returned.
type ack struct {
	version int64
	at      time.Time
}

// hotWriter writes the hot SKUs as the folder would, one log of its own:
// partition 0, offsets counting up across all of them, so every SKU's
// watermark only ever moves forward.
type hotWriter struct {
	store  *ledger.Store
	runID  string
	offset int64
	seq    int
	rnd    *rand.Rand
	acks   [hotSKUs][]ack // per SKU, in the order Apply returned
	// filled by run
	applied, entries, errors int
	firstErr                 error
	elapsed                  time.Duration
}

func (w *hotWriter) entry(sku int, typ string, q int64) ledger.Entry {
	w.seq++
	loc := hotLocation
	e := &events.LedgerEntry{EntryType: typ, SKU: hotSKU(sku), Location: &loc, Quantity: q,
		EventID: "hot-" + w.runID + "-" + strconv.Itoa(w.seq), EventTime: time.Now().UTC(), Source: "bench"}
	w.offset++
	return ledger.Entry{LedgerEntry: e, Partition: 0, Offset: w.offset}
}

// apply stores the batches and records the versions they produced.
func (w *hotWriter) apply(ctx context.Context, batches []ledger.Batch) error {
	res, err := w.store.Apply(ctx, batches)
	at := time.Now()
	if err != nil {
		return err
	}
	for _, r := range res {
		i, err := strconv.Atoi(r.SKU[len("HOT-"):])
		if err != nil || i < 0 || i >= hotSKUs {
			return fmt.Errorf("hot set: result for %q", r.SKU)
		}
		for _, c := range r.Changes {
			if c.Location == hotLocation {
				w.acks[i] = append(w.acks[i], ack{c.Version, at})
			}
		}
	}
	return nil
}

// seed gives every hot SKU its stock, 100 SKUs an Apply, and checks that
// the versions the writes reported are the ones Redis has.
func (w *hotWriter) seed(ctx context.Context) error {
	for lo := 0; lo < hotSKUs; lo += 100 {
		batches := make([]ledger.Batch, 0, 100)
		for i := lo; i < min(lo+100, hotSKUs); i++ {
			batches = append(batches, ledger.Batch{SKU: hotSKU(i), Entries: []ledger.Entry{w.entry(i, events.EntryReceipt, hotOnHand)}})
		}
		if err := w.apply(ctx, batches); err != nil {
			return fmt.Errorf("seed the hot set: %w", err)
		}
	}
	reqs := make([]ledger.LookupReq, hotSKUs)
	for i := range reqs {
		reqs[i] = ledger.LookupReq{SKU: hotSKU(i), Location: hotLocation}
	}
	res, err := w.store.Lookup(ctx, reqs, time.Now())
	if err != nil {
		return fmt.Errorf("read the seeded hot set: %w", err)
	}
	for i, r := range res {
		if len(w.acks[i]) != 1 || r.Version != w.acks[i][0].version || r.OnHand != hotOnHand {
			return fmt.Errorf("seeded %s: Redis has version %d, on hand %d; the write reported %v", hotSKU(i), r.Version, r.OnHand, w.acks[i])
		}
	}
	return nil
}

// run writes hotWriteRate entries/s, a batch every hotWriteEvery, each a ±1
// adjustment of a random hot SKU, until stop is closed or the deadline
// passes. A batch that falls behind is sent at once: the schedule does not
// slip.
func (w *hotWriter) run(ctx context.Context, stop <-chan struct{}, deadline time.Time) {
	per := int(hotWriteRate * hotWriteEvery / time.Second)
	start := time.Now()
	defer func() { w.elapsed = time.Since(start) }()
	for k := 0; ; k++ {
		due := start.Add(time.Duration(k) * hotWriteEvery)
		if due.After(deadline) {
			return
		}
		if wait := time.Until(due); wait > 0 {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		} else {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
		}
		picks := make([]int, per)
		for j := range picks {
			picks[j] = w.rnd.IntN(hotSKUs)
		}
		slices.Sort(picks) // one Batch per SKU, its entries in offset order
		var batches []ledger.Batch
		for _, sku := range picks {
			q := int64(1)
			if w.rnd.IntN(2) == 0 {
				q = -1
			}
			e := w.entry(sku, events.EntryAdjustment, q)
			if n := len(batches); n > 0 && batches[n-1].SKU == e.SKU {
				batches[n-1].Entries = append(batches[n-1].Entries, e)
			} else {
				batches = append(batches, ledger.Batch{SKU: e.SKU, Entries: []ledger.Entry{e}})
			}
		}
		if err := w.apply(ctx, batches); err != nil {
			w.errors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			continue
		}
		w.applied++
		w.entries += per
	}
}

// hotAnswer is one lookup answer of the hot set.
type hotAnswer struct {
	sku     int32
	version int64
	sent    time.Time
}

var versionField = []byte(`"version":`)

// parseVersion reads the version of a GET availability answer.
func parseVersion(body []byte) (int64, bool) {
	i := bytes.Index(body, versionField)
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(versionField):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

// staleness is how long an answer was behind: from when the first version
// newer than the one it served was acknowledged to when the request was
// sent, or 0 when no newer version had been acknowledged by then.
func staleness(acks []ack, a hotAnswer) time.Duration {
	j := sort.Search(len(acks), func(k int) bool { return acks[k].version > a.version })
	if j < len(acks) && acks[j].at.Before(a.sent) {
		return a.sent.Sub(acks[j].at)
	}
	return 0
}

// HotSet loads GET availability of 1,000 hot SKUs at one location over 64
// connections while 2,000 ledger entries/s change them, and checks every
// answer against the writes acknowledged before its request was sent:
// how many answers were stale and by how much, with the lookup cache's hit
// ratio, invalidations and evictions in the run; ceiling: the bare handler,
// loaded the same way under the same write stream.
func (r *Run) HotSet(ctx context.Context) error {
	w := &hotWriter{store: r.store, runID: strconv.FormatInt(time.Now().UnixNano(), 36), rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 17))}
	r.progress("hotset: seeding %d SKUs at %s", hotSKUs, hotLocation)
	if err := w.seed(ctx); err != nil {
		return err
	}
	sample, err := getBody(ctx, r, hotSKU(0), hotLocation)
	if err != nil {
		return err
	}
	ep, err := r.servers(ctx, len(sample), len(sample))
	if err != nil {
		return err
	}
	defer ep.stop()
	d := r.opt.Duration
	stopWriter := w.start(ctx, 2*d+10*time.Second)
	defer stopWriter()
	time.Sleep(500 * time.Millisecond) // the write stream is flowing before the first lookup

	r.progress("hotset: %d writes/s; closed loop, %d connections, %v each", hotWriteRate, hotConns, d)
	l := loadHotSet(ctx, ep, d)
	stopWriter()
	if w.applied == 0 {
		return fmt.Errorf("hot set: no write was applied (%d errors: %v)", w.errors, w.firstErr)
	}
	all, stale := w.check(l.answers)
	if len(all) == 0 {
		return fmt.Errorf("hot set: no answer to check (%d errors)", l.api.Errors)
	}
	r.rows = append(r.rows, r.hotSetRows(w, ep, l, all, stale)...)
	return nil
}

// start runs the writer in the background for at most within; the stop it
// returns ends it and waits for it, and may be called more than once.
func (w *hotWriter) start(ctx context.Context, within time.Duration) (stop func()) {
	halt := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(ctx, halt, time.Now().Add(within))
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(halt)
			wg.Wait()
		})
	}
}

// hotLoad is what loading the hot set gave.
type hotLoad struct {
	api, bare Latencies
	// before and after are the lookup cache's counters around the API's run.
	before, after store.CacheStats
	answers       [][]hotAnswer // the API's, by connection
	unparsed      int           // the API's answers without a version
}

// loadHotSet loads the API, keeping its answers, then the bare handler,
// each over hotConns connections for d.
func loadHotSet(ctx context.Context, ep *endpoints, d time.Duration) hotLoad {
	get := func(base string) Request {
		return func(i int) (*http.Request, error) {
			return http.NewRequest(http.MethodGet, base+"/v1/availability/"+hotSKU(hotPick(i))+"?location="+hotLocation, nil)
		}
	}
	answers := make([][]hotAnswer, hotConns)
	var unparsed [hotConns]int
	check := func(wk, i int, sent time.Time, body []byte) bool {
		v, ok := parseVersion(body)
		if !ok {
			unparsed[wk]++
			return false
		}
		if len(answers[wk]) < hotMaxAnswers/hotConns {
			answers[wk] = append(answers[wk], hotAnswer{sku: int32(hotPick(i)), version: v, sent: sent})
		}
		return true
	}
	l := hotLoad{answers: answers}
	l.before = ep.cacheStats()
	l.api = ClosedChecked(ctx, hotConns, d, get(ep.api), check)
	l.after = ep.cacheStats()
	l.bare = Closed(ctx, hotConns, d, get(ep.bare))
	for _, n := range unparsed {
		l.unparsed += n
	}
	return l
}

// check is the staleness of every answer against the writes acknowledged,
// and of the stale answers alone.
func (w *hotWriter) check(answers [][]hotAnswer) (all, stale []time.Duration) {
	for _, as := range answers {
		for _, a := range as {
			s := staleness(w.acks[a.sku], a)
			all = append(all, s)
			if s > 0 {
				stale = append(stale, s)
			}
		}
	}
	return all, stale
}

// describe says how much the writer wrote, and how it failed if it did.
func (w *hotWriter) describe() string {
	writes := fmt.Sprintf("%d entries/s written (%d entries in %d Apply calls, %d failed)",
		int(float64(w.entries)/w.elapsed.Seconds()), w.entries, w.applied, w.errors)
	if w.firstErr != nil {
		writes += fmt.Sprintf(": %v", w.firstErr)
	}
	return writes
}

// hotSetRows are the hot set's rows: the load beside the bare handler, the
// staleness of the answers (all, and the stale ones), and the lookup cache.
func (r *Run) hotSetRows(w *hotWriter, ep *endpoints, l hotLoad, all, stale []time.Duration) []Row {
	sa, ss := summarise(all, 0, 0), summarise(stale, 0, 0)
	maxStale := time.Duration(0)
	if len(stale) > 0 {
		maxStale = stale[len(stale)-1] // sorted by summarise
	}
	bound, size := "lookup cache off: every answer read from Redis", "—"
	if ep.cache != nil {
		bound = fmt.Sprintf("lookup cache max age %v", r.cfg.Redis.LookupCacheMaxAge)
		size = fmt.Sprintf("%d entries, ~%d KiB at the end", l.after.Entries, l.after.Bytes/1024)
	}
	sf, bare := l.api, l.bare
	return []Row{
		{fmt.Sprintf("hot set: GET availability of %d SKUs under %d writes/s, %d connections (closed loop)", hotSKUs, hotWriteRate, hotConns),
			fmt.Sprintf("%.0f req/s, p50 %s p99 %s p99.9 %s", sf.RPS(), ms(sf.P50), ms(sf.P99), ms(sf.P999)),
			fmt.Sprintf("bare handler %.0f req/s, p99 %s", bare.RPS(), ms(bare.P99)), sf.RPS() / bare.RPS(),
			fmt.Sprintf("%d errors (%d answers without a version); %s", sf.Errors, l.unparsed, w.describe())},
		{"hot set: answers older than a write acknowledged before the request",
			fmt.Sprintf("%d of %d answers stale (%.3f%%); staleness p99 %s, max %s", len(stale), len(all),
				100*float64(len(stale))/float64(len(all)), ms(sa.P99), ms(maxStale)),
			bound, 0,
			fmt.Sprintf("staleness: request sent − acknowledgement of the first newer version; among stale answers p50 %s p99 %s",
				ms(ss.P50), ms(ss.P99))},
		{"hot set: lookup cache during the run", describeCache(ep.cache, l.before, l.after), "—", 0, size},
	}
}
