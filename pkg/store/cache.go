package store

import (
	"crypto/tls"
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
// invalidation cannot keep a stale answer for long.
type Cache struct {
	*redis.Client
	stored atomic.Uint64 // entries stored in the cache

	mu      sync.Mutex
	evicted uint64 // highest count of entries dropped other than by invalidation
}

// CacheStats is what the lookup cache has done since it was opened.
type CacheStats struct {
	Hits, Misses  uint64
	Invalidations uint64 // keys Redis said changed
	// Evictions are entries dropped other than by an invalidation: for
	// room, for age, or with the connection that was tracking them.
	Evictions uint64
	Entries   int
	Bytes     int64 // estimated
}

// OpenCache returns a client for lookups with client-side caching, or nil
// when cfg turns it off or it cannot work: Redis only tracks keys for a
// client of database 0, so on any other database lookups read Redis as
// everything else does.
func OpenCache(cfg config.Redis) *Cache {
	if !cfg.LookupCache || cfg.DB != 0 {
		return nil
	}
	c := &Cache{}
	opts := &redis.Options{
		Addr:     cfg.Addr,
		Password: cfg.Password,
		Protocol: 3, // invalidations are RESP3 push messages
		PoolSize: 64,
		ClientSideCacheConfig: &redis.ClientSideCacheConfig{
			MaxEntries:   cfg.LookupCacheEntries,
			MaxStaleness: cfg.LookupCacheMaxAge,
			Sizer:        c.size,
		},
		// Misses that come together (a batch query's positions) go out
		// together on one connection instead of one connection each.
		ClientSideCacheCoalesceMisses: true,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c.Client = redis.NewClient(opts)
	return c
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
	out := CacheStats{Hits: st.Hits, Misses: st.Misses, Invalidations: rs.Invalidations, Entries: st.Entries, Bytes: st.MemoryUsageBytes}
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
	return out
}

// Register adds the cache's metrics to reg.
func (c *Cache) Register(reg prometheus.Registerer) {
	counter := func(name, help string, v func(CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(c.Stats())) })
	}
	reg.MustRegister(
		counter("stockflow_lookup_cache_hits_total", "Lookup reads answered from process memory.", func(s CacheStats) uint64 { return s.Hits }),
		counter("stockflow_lookup_cache_misses_total", "Lookup reads that went to Redis.", func(s CacheStats) uint64 { return s.Misses }),
		counter("stockflow_lookup_cache_invalidations_total", "Keys Redis said changed while cached.", func(s CacheStats) uint64 { return s.Invalidations }),
		counter("stockflow_lookup_cache_evictions_total", "Cached entries dropped other than by invalidation: for room, for age, or with their connection.",
			func(s CacheStats) uint64 { return s.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stockflow_lookup_cache_entries", Help: "Entries in the lookup cache."},
			func() float64 { return float64(c.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stockflow_lookup_cache_bytes", Help: "Estimated memory of the lookup cache."},
			func() float64 { return float64(c.Stats().Bytes) }),
	)
}
