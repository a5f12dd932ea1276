package store

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/stockflow/stockflow/pkg/config"
)

// Cache is the lookup cache: a Redis client whose plain reads (HGETALL,
// HGET) are answered from process memory until Redis says the key changed.
// It is go-redis' client-side caching: every connection turns on CLIENT
// TRACKING, Redis sends an invalidation for a key a connection has read when
// the key is next written, and a background drainer applies them. An entry is
// also never served for longer than the configured max age, so a lost
// invalidation cannot keep a stale answer for long (docs/design.md §9.3).
type Cache struct {
	*redis.Client
	local  *redis.LocalCache
	stored atomic.Uint64 // entries stored in the cache
	hits   atomic.Uint64 // looks (Cached) that found the reply
	misses atomic.Uint64
	warm   chan warmRead
	warmed atomic.Uint64 // reads Warm dropped: the warmers were busy
	user   string        // the ACL user, part of go-redis' cache entry names

	mu      sync.Mutex
	evicted uint64 // highest count of entries dropped other than by invalidation
}

// CacheStats is what the lookup cache has done since it was opened.
type CacheStats struct {
	Hits, Misses  uint64 // lookups' reads found in memory, or not
	Invalidations uint64 // keys Redis said changed
	// Evictions are entries dropped other than by an invalidation: for
	// room, for age, or with the connection that was tracking them.
	Evictions uint64
	Entries   int
	Bytes     int64 // estimated
	// WarmsDropped are background reads Warm dropped, its readers busy.
	WarmsDropped uint64
}

// OpenCache returns a client for lookups with client-side caching, or nil
// when cfg turns it off or it cannot work: Redis only tracks keys for a
// client of database 0, so on any other database lookups read Redis as
// everything else does.
func OpenCache(cfg config.Redis) *Cache {
	if !cfg.LookupCache || cfg.DB != 0 || cfg.Cluster() {
		return nil
	}
	c := &Cache{user: cfg.Username}
	c.local = redis.NewLocalCache(redis.CacheConfig{
		MaxEntries:   cfg.LookupCacheEntries,
		MaxStaleness: cfg.LookupCacheMaxAge,
		Sizer:        c.size,
	})
	opts := &redis.Options{
		Protocol:        3, // invalidations are RESP3 push messages
		PoolSize:        64,
		ClientSideCache: c.local,
		// Single misses that come together go out together on one
		// connection instead of taking one connection each.
		ClientSideCacheCoalesceMisses: true,
	}
	secure(opts, cfg)
	c.Client = redis.NewClient(opts)
	c.warm = make(chan warmRead, 4096)
	return c
}

// warmRead is a read to bring into the cache: HGETALL key, or HGET key field.
type warmRead struct{ key, field string }

// Warm asks for HGETALL key (HGET key field, with a field) to be read
// through the cache in the background, so that the next look finds it. A
// caller that read it past the cache, in a pipeline, calls it for the next
// time. Reads that find every warmer busy are dropped.
func (c *Cache) Warm(key, field string) {
	select {
	case c.warm <- warmRead{key, field}:
	default:
		c.warmed.Add(1)
	}
}

// Run reads what Warm asked for until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-c.warm:
					if r.field == "" {
						c.HGetAll(ctx, r.key)
					} else {
						c.HGet(ctx, r.key, r.field)
					}
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// Cached returns the reply the cache holds for the read command args (as
// go-redis sends them, e.g. "hgetall", key), as Redis sent it (RESP3), and
// whether it had one: a look at process memory that never goes to Redis.
// Reading through the client fetches and caches a miss; this does not, so a
// caller can gather the misses of many reads into one pipeline.
//
// It relies on how go-redis names its cache entries: the connection's
// namespace (database 0 and the ACL user name, empty without one) and the
// command as written on the wire. Should that change, every look misses and lookups read Redis, still
// correct; the store's integration test fails first.
func (c *Cache) Cached(ctx context.Context, args ...string) ([]byte, bool) {
	b := make([]byte, 0, 64)
	b = append(b, "0\x00"...)
	b = strconv.AppendInt(b, int64(len(c.user)), 10)
	b = append(b, ':')
	b = append(b, c.user...)
	b = append(b, "\x00*"...)
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	v, ok := c.local.Get(ctx, string(b))
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return v, ok
}

// size estimates an entry's memory, and counts the entries stored: the
// cache sizes an entry once when it reserves it (no value yet) and once when
// it stores its value.
func (c *Cache) size(cacheKey string, redisKeys []string, value []byte) int64 {
	if value != nil {
		c.stored.Add(1)
	}
	n := int64(len(cacheKey) + len(value) + 128)
	for _, k := range redisKeys {
		n += int64(len(k))
	}
	return n
}

// Stats reads the cache's counters.
func (c *Cache) Stats() CacheStats {
	st := c.CSCStats()
	rs := c.CSCRefreshStats()
	out := CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Invalidations: rs.Invalidations, Entries: st.Entries, Bytes: st.MemoryUsageBytes}
	// Every stored entry is still there, was removed by an invalidation
	// (each lookup key has one entry), or was evicted. The count is kept
	// monotonic: the three are read at slightly different moments.
	removed := rs.Deletions - rs.DeletionsNoop
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := int64(c.stored.Load()) - int64(removed) - int64(st.Entries); n > 0 && uint64(n) > c.evicted {
		c.evicted = uint64(n)
	}
	out.Evictions = c.evicted
	out.WarmsDropped = c.warmed.Load()
	return out
}

// Register adds the cache's metrics to reg. A scrape reads Stats once.
func (c *Cache) Register(reg prometheus.Registerer) { reg.MustRegister(cacheCollector{c}) }

var (
	cacheHits = prometheus.NewDesc("stockflow_lookup_cache_hits_total", "Lookup reads answered from process memory.", nil, nil)
	cacheMiss = prometheus.NewDesc("stockflow_lookup_cache_misses_total", "Lookup reads that went to Redis.", nil, nil)
	cacheInv  = prometheus.NewDesc("stockflow_lookup_cache_invalidations_total", "Keys Redis said changed while cached.", nil, nil)
	cacheEvic = prometheus.NewDesc("stockflow_lookup_cache_evictions_total",
		"Cached entries dropped other than by invalidation: for room, for age, or with their connection.", nil, nil)
	cacheSize  = prometheus.NewDesc("stockflow_lookup_cache_entries", "Entries in the lookup cache.", nil, nil)
	cacheBytes = prometheus.NewDesc("stockflow_lookup_cache_bytes", "Estimated memory of the lookup cache.", nil, nil)
)

type cacheCollector struct{ c *Cache }

func (cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHits, cacheMiss, cacheInv, cacheEvic, cacheSize, cacheBytes} {
		ch <- d
	}
}

func (k cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := k.c.Stats()
	ch <- prometheus.MustNewConstMetric(cacheHits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(cacheMiss, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(cacheInv, prometheus.CounterValue, float64(st.Invalidations))
	ch <- prometheus.MustNewConstMetric(cacheEvic, prometheus.CounterValue, float64(st.Evictions))
	ch <- prometheus.MustNewConstMetric(cacheSize, prometheus.GaugeValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(cacheBytes, prometheus.GaugeValue, float64(st.Bytes))
}
