// Package config loads Stockflow's configuration from defaults, an optional
// YAML file, STOCKFLOW_* environment variables and command-line flags, in
// rising order of precedence, and validates the result as a whole.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stockflow/stockflow/atp"
)

// Config is the whole configuration of a Stockflow process.
type Config struct {
	Kafka          Kafka  `yaml:"kafka"`
	Topics         Topics `yaml:"topics"`
	Redis          Redis  `yaml:"redis"`
	SchemaRegistry string `yaml:"schema_registry_url"` // empty: built-in ids from schemas/manifest.json
	HTTPAddr       string `yaml:"http_addr"`           // default 127.0.0.1:8080
	// DebugAddr is where a serve process answers Go's runtime profiles
	// (/debug/pprof/), loopback only; empty (the default): nowhere.
	DebugAddr    string `yaml:"debug_addr"`
	OTLPEndpoint string `yaml:"otlp_endpoint"` // empty: tracing off
	// JaegerUIURL is where the console links an entry's trace; empty: no links.
	JaegerUIURL string `yaml:"jaeger_ui_url"`
	LogLevel    string `yaml:"log_level"`  // debug, info, warn, error; default info
	LogFormat   string `yaml:"log_format"` // json, text, or auto (text on a terminal); default auto
	// TraceSampleRatio samples new traces at this ratio (a sampled parent
	// is always followed). Default 1.
	TraceSampleRatio float64 `yaml:"trace_sample_ratio"`
	// ReadyMaxLag fails /readyz when the folder is more than this many
	// ledger records behind. Default 100000.
	ReadyMaxLag    int           `yaml:"ready_max_lag"`
	MaxRecordBytes int           `yaml:"max_record_bytes"` // default 1 MiB
	ShutdownGrace  time.Duration `yaml:"shutdown_grace"`   // default 20s
	// FolderCacheSKUs bounds the SKU states each ledger partition keeps
	// between polls. Default 50000.
	FolderCacheSKUs int `yaml:"folder_cache_skus"`
	// FolderPollRecords bounds the ledger records the folder takes in one
	// poll (no more than one fetch brings, -kafka-fetch-max-bytes). A
	// larger poll gives each SKU more entries per Redis write while a
	// backlog is read; a small one is all there is once caught up. A
	// smaller poll keeps fewer records and decoded entries in memory at
	// once. Default 20000.
	FolderPollRecords int `yaml:"folder_poll_records"`
	// FolderInFlight bounds how many folded polls may wait for their
	// outputs, applied offsets and commit before the folder stops polling.
	// Default 4.
	FolderInFlight int `yaml:"folder_in_flight"`
	// MemoryLimitMiB is the soft memory limit of a serve process (the Go
	// runtime's, as GOMEMLIMIT sets it): past it the garbage collector
	// runs harder rather than let the heap grow. 0 takes 80% of the
	// container's memory limit (cgroup memory.max) when there is one, and
	// sets none otherwise; -1 sets none. GOMEMLIMIT in the environment
	// wins over both. Default 0.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
	// Commitments keeps every order line's promise in the fold and
	// publishes each change on the commitments topic, with planning
	// exceptions on the alerts topic. Default true.
	Commitments bool      `yaml:"commitments"`
	API         API       `yaml:"api"`
	Reconcile   Reconcile `yaml:"reconcile"`
	// NormalizerTxnTimeout is the normalizers' Kafka transaction timeout:
	// the broker aborts a transaction left open longer. An instance that
	// dies and never comes back leaves its transaction open, and every
	// read_committed reader of the partitions it wrote to (the ledger's
	// folders) waits for that abort: this long, plus up to the broker's
	// transaction.abort.timed.out.transaction.cleanup.interval.ms (10s
	// by default). A transaction is open while one poll's entries are
	// produced and committed. Default 10s; 5s..15m (the broker's default
	// transaction.max.timeout.ms).
	NormalizerTxnTimeout time.Duration `yaml:"normalizer_txn_timeout"`
	// NormalizerAlign keeps the source topics' partitions in step by
	// record time while a backlog is read: a partition more than this
	// ahead of the earliest one still being read waits for it, so the
	// ledger gets the sources' events in about the order they happened.
	// Aligned, each fetch takes a share from every source partition. It
	// keeps a catch-up's memory from growing with the backlog
	// (docs/benchmarks.md). Record times come from the producers: the
	// window must exceed their clocks' skew. 0 reads the partitions as the
	// fetches bring them. Default 1s; 0..1h.
	NormalizerAlign time.Duration `yaml:"normalizer_align"`
	// NormalizerFetchMaxBytes bounds what one fetch of a normalizer brings
	// (Kafka.FetchMaxBytes bounds the other consumers'): the normalizer
	// turns records into ledger entries and lets them go, so it needs no
	// large fetches to keep up, and what its fetches buffer is a large part
	// of what a catch-up holds. Default 2 MiB; 64 KiB..256 MiB.
	NormalizerFetchMaxBytes int `yaml:"normalizer_fetch_max_bytes"`
	// Embedded runs an in-process Kafka (kfake) and Redis (miniredis). It is
	// the default when neither Kafka brokers nor a Redis address are set.
	Embedded bool `yaml:"-"`
}

// Kafka is the Kafka client configuration.
type Kafka struct {
	Brokers         []string `yaml:"brokers"`          // empty with no Redis address: embedded
	ClientID        string   `yaml:"client_id"`        // default stockflow
	NormalizerGroup string   `yaml:"normalizer_group"` // default stockflow-normalizer
	FolderGroup     string   `yaml:"folder_group"`     // default stockflow-folder
	ReconcilerGroup string   `yaml:"reconciler_group"` // default stockflow-reconciler
	Partitions      int      `yaml:"partitions"`       // for topics created at start; default 12
	Replication     int      `yaml:"replication"`      // for topics created at start; default 1
	// MinInsyncReplicas is min.insync.replicas of topics created at start:
	// with acks=all, a write counts once this many replicas have it. 0:
	// the broker's default. With replication 3, 2 survives one broker.
	MinInsyncReplicas int  `yaml:"min_insync_replicas"`
	CreateTopics      bool `yaml:"create_topics"` // default true
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// FetchMaxBytes bounds what one fetch of a consumer may bring from a
	// broker (compressed; at most 1 MiB of it from one partition), and so
	// the records each consumer buffers while a backlog is read: a
	// consumer holds one fetch per broker, decompressed. The normalizers
	// have their own (Config.NormalizerFetchMaxBytes). Default 4 MiB: 8 MiB
	// folded no faster and held about 70 MiB more at the peak of a
	// 1,000,000-event catch-up (docs/benchmarks.md).
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// TLS connects to the brokers with TLS, verifying their certificates
	// against the system's roots unless TLSCA is set. Any TLS* setting
	// below implies it.
	TLS bool `yaml:"tls"`
	// TLSCA is a PEM bundle of the CAs the brokers' certificates must
	// chain to (a private CA); empty: the system's roots.
	TLSCA string `yaml:"tls_ca"`
	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate; both or neither.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSServerName is the name every broker's certificate must carry;
	// default: the host each broker is dialed at.
	TLSServerName string `yaml:"tls_server_name"`
	// SASLMechanism authenticates to the brokers: plain, scram-sha-256,
	// scram-sha-512 or oauthbearer. Empty: no SASL.
	SASLMechanism string `yaml:"sasl_mechanism"`
	// SASLUsername and SASLPassword are the credentials of plain and
	// scram-*. SASLPasswordFile holds the password instead (a trailing
	// newline is dropped), so that it need not sit in the environment or
	// the process list; Load reads it into SASLPassword.
	SASLUsername     string `yaml:"sasl_username"`
	SASLPassword     string `yaml:"sasl_password"`
	SASLPasswordFile string `yaml:"sasl_password_file"`
	// SASLTokenFile and SASLTokenCommand give oauthbearer its token, one
	// or the other: the file is read again, or the command (run by sh)
	// run again, for every authentication, so a token can be rotated
	// while Stockflow runs.
	SASLTokenFile    string `yaml:"sasl_token_file"`
	SASLTokenCommand string `yaml:"sasl_token_command"`
}

// Topics names every topic Stockflow reads or writes.
type Topics struct {
	Inventory string `yaml:"inventory"`
	Orders    string `yaml:"orders"`
	Supplier  string `yaml:"supplier"`
	Catalog   string `yaml:"catalog"`
	Ledger    string `yaml:"ledger"`
	// Holds carries hold requests and releases from the API to the owner
	// of their ledger partition, which decides them and journals the
	// decisions to the ledger. It must have as many partitions as the
	// ledger (the same key lands on the same partition number), and it
	// takes no transactional writes, so no open transaction delays a hold.
	Holds        string `yaml:"holds"`
	Availability string `yaml:"availability"`
	Alerts       string `yaml:"alerts"`
	DLQ          string `yaml:"dlq"`
	// Index is the normalizers' document index (which SKU each order and
	// PO line is for), compacted: Redis is rebuilt from it when it loses
	// the index.
	Index string `yaml:"index"`
	// Snapshots carries stock snapshots from WMS and ERP systems to
	// reconcile; Reconciliation gets each run's exceptions and summary.
	Snapshots      string `yaml:"snapshots"`
	Reconciliation string `yaml:"reconciliation"`
	// Commitments gets each change of an order line's promise, keyed by
	// order id.
	Commitments string `yaml:"commitments"`
}

// Reconcile configures reconciliation of snapshots with the ledger.
type Reconcile struct {
	// Tolerance per location: *=2;DC-EAST=5,1% (see ParseTolerances).
	Tolerance string `yaml:"tolerance"`
	// EndTimeout: a snapshot with no record for this long, its end not
	// arrived, is incomplete. Default 10m.
	EndTimeout time.Duration `yaml:"end_timeout"`
	// AutoApplyUnits > 0 applies drifts of at most that many units as a
	// run from the snapshot topic completes. Default 0: report only.
	AutoApplyUnits int `yaml:"auto_apply_units"`
	// Retention is how long runs and their exceptions are kept. Default 30 days.
	Retention time.Duration `yaml:"retention"`
	// MaxLines is the most lines one snapshot may carry: one announcing
	// more is refused, one sending more ends incomplete. Default 1,000,000.
	MaxLines int `yaml:"max_lines"`
	// MaxExceptions is the most exceptions one run stores (about 0.5 KB
	// each in Redis for the retention); past it they are counted by class
	// only and the run says it is truncated. Default 100,000.
	MaxExceptions int `yaml:"max_exceptions"`

	// Tolerances is Tolerance parsed, filled by Validate.
	Tolerances Tolerances `yaml:"-"`
}

// API configures the checkout-facing HTTP API.
type API struct {
	// Groups maps distribution groups to their locations, written
	// GROUP=LOC,LOC;GROUP=LOC. Default: the simulator's network.
	Groups string `yaml:"groups"`
	// ChannelRules caps or protects what channels may promise, written
	// channel=cap:50%;other=cap:200,protect:10 (see atp.ParseChannelRules).
	ChannelRules string `yaml:"channel_rules"`
	// SupplyPolicy lists the supply kinds future ATP counts: any of asn,
	// acknowledged, released. Default all three.
	SupplyPolicy string `yaml:"supply_policy"`
	// Keys are API keys with their scopes, written token=read,hold;token2=admin.
	// Empty: no authentication (development), said loudly at start.
	Keys string `yaml:"keys"`
	// RateLimit is requests per second allowed per API key (per client
	// address without keys); bursts of twice that. 0 turns it off. Default 5000.
	RateLimit float64 `yaml:"rate_limit"`
	// HoldTimeout bounds how long a hold request waits for the ledger's
	// decision before answering 503. Default 5s.
	HoldTimeout time.Duration `yaml:"hold_timeout"`
	// TrustedProxies are the addresses or CIDR blocks of the proxies whose
	// X-Forwarded-For header is believed when telling clients apart (rate
	// limits, failed authentications). Default none: the client is the
	// connection's remote address.
	TrustedProxies []string `yaml:"trusted_proxies"`

	// Parsed holds the settings above in the form the service uses,
	// filled by Validate: they are parsed once, where they are checked.
	Parsed ParsedAPI `yaml:"-"`
}

// ParsedAPI are the API's settings that are written as text, parsed.
type ParsedAPI struct {
	Groups         map[string][]string
	ChannelRules   atp.ChannelRules
	Supply         atp.SupplyPolicy
	Keys           map[string][]string
	TrustedProxies []netip.Prefix
}

// Redis is the Redis client configuration.
type Redis struct {
	Addr string `yaml:"addr"` // host:port; empty with no brokers: embedded
	// ClusterAddrs are seed nodes of a Redis Cluster (host:port each):
	// set instead of Addr, they select the cluster client, which finds
	// the other nodes and follows slots as they move.
	ClusterAddrs []string `yaml:"cluster_addrs"`
	// Username is the ACL user; empty: Redis' default user.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// PasswordFile holds the password (a trailing newline is dropped), so
	// that it need not sit in the environment or the process list. Load
	// reads it into Password.
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// TLS connects with TLS, verifying the server against the system's
	// roots unless TLSCA is set. Any TLS* setting below implies it.
	TLS bool `yaml:"tls"`
	// TLSCA is a PEM bundle of the CAs the server's certificate must chain
	// to (a private CA); empty: the system's roots.
	TLSCA string `yaml:"tls_ca"`
	// TLSCert and TLSKey are a PEM client certificate and its key, for a
	// server that asks for one; both or neither.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSServerName is the name the server's certificate must carry;
	// default: the host of Addr.
	TLSServerName string `yaml:"tls_server_name"`
	// KeyPrefix starts every key Stockflow writes, so that several
	// deployments (or tests and benchmarks) can share one database: the
	// lookup cache works on database 0 only. Default "sf".
	KeyPrefix string `yaml:"key_prefix"`
	// LookupCache serves lookups from process memory, kept fresh by Redis
	// invalidations (client-side caching: RESP3, database 0). Default on.
	LookupCache bool `yaml:"lookup_cache"`
	// LookupCacheEntries bounds the lookup cache; a position or a group's
	// demand is one entry. Default 200000.
	LookupCacheEntries int `yaml:"lookup_cache_entries"`
	// LookupCacheMaxAge is the longest a cached entry is served without
	// being read again from Redis, however invalidations fare: the hard
	// bound on a lookup's staleness. Default 5s.
	LookupCacheMaxAge time.Duration `yaml:"lookup_cache_max_age"`
}

// The bounds of NormalizerTxnTimeout. The broker refuses a timeout above
// its transaction.max.timeout.ms (15 min by default). A normalizer's
// transaction is open on the broker only while one poll's entries (of at
// most 5,000 source records) are produced and committed: the minimum
// leaves room for a broker that is slow for a moment, rather than abort
// healthy transactions (which are then redone).
const (
	MinNormalizerTxnTimeout = 5 * time.Second
	MaxNormalizerTxnTimeout = 15 * time.Minute
)

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Kafka: Kafka{
			ClientID:        "stockflow",
			NormalizerGroup: "stockflow-normalizer",
			FolderGroup:     "stockflow-folder",
			ReconcilerGroup: "stockflow-reconciler",
			Partitions:      12,
			Replication:     1,
			CreateTopics:    true,
			SessionTimeout:  10 * time.Second,
			FetchMaxBytes:   4 << 20,
		},
		Topics: Topics{
			Inventory:      "wms.inventory.v1",
			Orders:         "orders.v1",
			Supplier:       "supplier.v1",
			Catalog:        "catalog.items.v1",
			Ledger:         "stockflow.ledger.v1",
			Holds:          "stockflow.holds.v1",
			Availability:   "stockflow.availability.v1",
			Alerts:         "stockflow.alerts.v1",
			DLQ:            "stockflow.dlq.v1",
			Index:          "stockflow.index.v1",
			Snapshots:      "wms.snapshots.v1",
			Reconciliation: "stockflow.reconciliation.v1",
			Commitments:    "stockflow.commitments.v1",
		},
		Reconcile:         Reconcile{EndTimeout: 10 * time.Minute, Retention: 30 * 24 * time.Hour, MaxLines: 1_000_000, MaxExceptions: 100_000},
		Redis:             Redis{KeyPrefix: "sf", LookupCache: true, LookupCacheEntries: 200_000, LookupCacheMaxAge: 5 * time.Second},
		HTTPAddr:          "127.0.0.1:8080",
		LogLevel:          "info",
		LogFormat:         "auto",
		TraceSampleRatio:  1,
		ReadyMaxLag:       100000,
		MaxRecordBytes:    1 << 20,
		ShutdownGrace:     20 * time.Second,
		FolderCacheSKUs:   50000,
		FolderInFlight:    4,
		FolderPollRecords: 20000,
		NormalizerAlign:   time.Second,
		// 2 MiB: with alignment, a catch-up's peak stays flat in the
		// backlog's length (docs/benchmarks.md).
		NormalizerFetchMaxBytes: 2 << 20,
		Commitments:             true,
		// How long a dead instance's open transaction holds back the ledger's readers.
		NormalizerTxnTimeout: 10 * time.Second,
		API: API{
			Groups:       "DCS=DC-EAST,DC-WEST,DC-CENTRAL;STORES=STORE-NYC,STORE-SFO",
			SupplyPolicy: "asn,acknowledged,released",
			RateLimit:    5000,
			HoldTimeout:  5 * time.Second,
		},
	}
}

// OptionGroup is a set of groups of options, by what they configure. A
// command takes the flags of the groups it uses; its file and environment
// may still hold any setting, since one file serves every command.
type OptionGroup uint

// The groups of options.
const (
	// KafkaOptions reach the brokers: the brokers, the client id, TLS and SASL.
	KafkaOptions OptionGroup = 1 << iota
	// ConsumerOptions are the service's consumer groups, their session
	// timeout and the topics it creates at start.
	ConsumerOptions
	// TopicOptions name the topics.
	TopicOptions
	// RedisOptions reach Redis (address or cluster, credentials, database,
	// TLS) and name the prefix of the keys written there.
	RedisOptions
	// RecordOptions encode and decode records: the schema registry and the
	// largest record accepted.
	RecordOptions
	// HTTPOptions is the service's HTTP address, which the reconcile
	// command calls too.
	HTTPOptions
	// APIOptions configure the HTTP API, with the lookup cache its reads
	// are served from.
	APIOptions
	// PipelineOptions tune the processors: the folder's cache and polls in
	// flight, the normalizers' transaction timeout, the shutdown grace and
	// readiness.
	PipelineOptions
	// ReconcileOptions configure reconciliation of snapshots.
	ReconcileOptions
	// LogOptions set the log's level and format.
	LogOptions
	// TraceOptions send traces and link the console to them.
	TraceOptions

	// AllOptions is every group: the service's and the benchmark's.
	AllOptions = KafkaOptions | ConsumerOptions | TopicOptions | RedisOptions | RecordOptions |
		HTTPOptions | APIOptions | PipelineOptions | ReconcileOptions | LogOptions | TraceOptions
)

// option ties one setting to its group, its flag, its environment variable
// and its field.
type option struct {
	group OptionGroup
	flag  string
	usage string // without the default, which -h shows from Default()
	ptr   any    // *string, *int, *bool, *float64, *[]string, *time.Duration
}

func (c *Config) options() []option {
	return append(c.topicOptions(), []option{
		{KafkaOptions, "kafka-brokers", "Kafka bootstrap brokers, comma-separated (empty with no Redis address: embedded)", &c.Kafka.Brokers},
		{KafkaOptions, "kafka-client-id", "Kafka client id", &c.Kafka.ClientID},
		{KafkaOptions, "kafka-tls", "connect to Kafka with TLS", &c.Kafka.TLS},
		{KafkaOptions, "kafka-tls-ca", "PEM file of the CAs the brokers' certificates must chain to (implies TLS; empty: system roots)", &c.Kafka.TLSCA},
		{KafkaOptions, "kafka-tls-cert", "PEM client certificate for Kafka, with -kafka-tls-key (implies TLS)", &c.Kafka.TLSCert},
		{KafkaOptions, "kafka-tls-key", "PEM key of -kafka-tls-cert (implies TLS)", &c.Kafka.TLSKey},
		{KafkaOptions, "kafka-tls-server-name", "name every broker's certificate must carry (implies TLS; default: the host each broker is dialed at)", &c.Kafka.TLSServerName},
		{KafkaOptions, "kafka-sasl-mechanism", "Kafka SASL mechanism: plain, scram-sha-256, scram-sha-512, oauthbearer (empty: no SASL)", &c.Kafka.SASLMechanism},
		{KafkaOptions, "kafka-sasl-username", "Kafka SASL user (plain, scram-*)", &c.Kafka.SASLUsername},
		{KafkaOptions, "kafka-sasl-password", "Kafka SASL password (plain, scram-*)", &c.Kafka.SASLPassword},
		{KafkaOptions, "kafka-sasl-password-file", "file holding the Kafka SASL password (instead of -kafka-sasl-password)", &c.Kafka.SASLPasswordFile},
		{KafkaOptions, "kafka-sasl-token-file", "file holding the oauthbearer token, read again at every authentication", &c.Kafka.SASLTokenFile},
		{KafkaOptions, "kafka-sasl-token-command", "command (run by sh) printing the oauthbearer token, run again at every authentication", &c.Kafka.SASLTokenCommand},
		{ConsumerOptions, "kafka-normalizer-group", "consumer group of the normalizers", &c.Kafka.NormalizerGroup},
		{ConsumerOptions, "kafka-folder-group", "consumer group of the ledger folder", &c.Kafka.FolderGroup},
		{ConsumerOptions, "kafka-reconciler-group", "consumer group of the snapshot reconciler", &c.Kafka.ReconcilerGroup},
		{ConsumerOptions, "kafka-session-timeout", "how long the group waits for a silent member", &c.Kafka.SessionTimeout},
		{ConsumerOptions, "kafka-fetch-max-bytes", "most bytes one fetch brings from a broker (at most 1 MiB of them from one partition): what each consumer buffers per broker while reading a backlog", &c.Kafka.FetchMaxBytes},
		{ConsumerOptions, "kafka-partitions", "partitions of topics created at start", &c.Kafka.Partitions},
		{ConsumerOptions, "kafka-replication", "replication factor of topics created at start", &c.Kafka.Replication},
		{ConsumerOptions, "kafka-min-insync-replicas", "min.insync.replicas of topics created at start (0: the broker's default)", &c.Kafka.MinInsyncReplicas},
		{ConsumerOptions, "kafka-create-topics", "create missing topics at start", &c.Kafka.CreateTopics},
		{RedisOptions, "redis-addr", "Redis host:port (empty with no brokers: embedded)", &c.Redis.Addr},
		{RedisOptions, "redis-cluster-addrs", "seed nodes of a Redis Cluster, comma-separated host:port (instead of -redis-addr)", &c.Redis.ClusterAddrs},
		{RedisOptions, "redis-username", "Redis ACL user (empty: the default user)", &c.Redis.Username},
		{RedisOptions, "redis-password", "Redis password", &c.Redis.Password},
		{RedisOptions, "redis-password-file", "file holding the Redis password (instead of -redis-password)", &c.Redis.PasswordFile},
		{RedisOptions, "redis-db", "Redis database number", &c.Redis.DB},
		{RedisOptions, "redis-tls", "connect to Redis with TLS", &c.Redis.TLS},
		{RedisOptions, "redis-tls-ca", "PEM file of the CAs Redis' certificate must chain to (implies TLS; empty: system roots)", &c.Redis.TLSCA},
		{RedisOptions, "redis-tls-cert", "PEM client certificate for Redis, with -redis-tls-key (implies TLS)", &c.Redis.TLSCert},
		{RedisOptions, "redis-tls-key", "PEM key of -redis-tls-cert (implies TLS)", &c.Redis.TLSKey},
		{RedisOptions, "redis-tls-server-name", "name Redis' certificate must carry (implies TLS; default: the host of -redis-addr)", &c.Redis.TLSServerName},
		{RedisOptions, "redis-key-prefix", "what every Redis key starts with", &c.Redis.KeyPrefix},
		{RecordOptions, "schema-registry-url", "Confluent-compatible schema registry URL (empty: built-in schema ids)", &c.SchemaRegistry},
		{RecordOptions, "max-record-bytes", "largest source record accepted; larger ones are dead-lettered", &c.MaxRecordBytes},
		{HTTPOptions, "http-addr", "HTTP listen address", &c.HTTPAddr},
		{HTTPOptions, "debug-addr", "loopback address where serve answers runtime profiles at /debug/pprof/ (empty: off)", &c.DebugAddr},
		{APIOptions, "groups", "distribution groups: GROUP=LOC,LOC;GROUP=LOC", &c.API.Groups},
		{APIOptions, "channel-rules", "channel caps and protections: web=cap:50%;stores=protect:20", &c.API.ChannelRules},
		{APIOptions, "supply-policy", "supply kinds future ATP counts, comma-separated: any of asn, acknowledged, released", &c.API.SupplyPolicy},
		{APIOptions, "api-keys", "API keys and scopes: token=read,hold;token2=admin (empty: no auth, dev only)", &c.API.Keys},
		{APIOptions, "rate-limit", "requests/s per API key (0: off)", &c.API.RateLimit},
		{APIOptions, "hold-timeout", "how long a hold waits for the ledger's decision", &c.API.HoldTimeout},
		{APIOptions, "trusted-proxies", "proxies whose X-Forwarded-For is believed: addresses or CIDR blocks, comma-separated (empty: none)", &c.API.TrustedProxies},
		{APIOptions, "lookup-cache", "serve lookups from process memory, invalidated by Redis (database 0 only)", &c.Redis.LookupCache},
		{APIOptions, "lookup-cache-entries", "positions and group demands the lookup cache holds", &c.Redis.LookupCacheEntries},
		{APIOptions, "lookup-cache-max-age", "the longest a cached lookup entry is served before it is read again", &c.Redis.LookupCacheMaxAge},
		{PipelineOptions, "folder-cache-skus", "SKU states each ledger partition keeps in memory between polls", &c.FolderCacheSKUs},
		{PipelineOptions, "folder-poll-records", "most ledger records the folder takes in one poll", &c.FolderPollRecords},
		{PipelineOptions, "folder-in-flight", "folded polls that may wait for their outputs and offsets before the folder stops polling", &c.FolderInFlight},
		{PipelineOptions, "memory-limit-mib", "soft memory limit of the process in MiB (0: 80% of the container's limit, if any; -1: none; GOMEMLIMIT wins)", &c.MemoryLimitMiB},
		{PipelineOptions, "commitments", "keep order lines' promises and publish their changes (and planning exceptions)", &c.Commitments},
		{PipelineOptions, "normalizer-align", "how far ahead by record time one source partition may read of the earliest one still being read (0: no alignment)", &c.NormalizerAlign},
		{PipelineOptions, "normalizer-fetch-max-bytes", "most bytes one fetch of a normalizer brings from a broker (-kafka-fetch-max-bytes bounds the folder's and the other consumers')", &c.NormalizerFetchMaxBytes},
		{PipelineOptions, "normalizer-txn-timeout", "the normalizers' Kafka transaction timeout: how long an instance that died holds back readers of what it wrote", &c.NormalizerTxnTimeout},
		{PipelineOptions, "shutdown-grace", "how long a graceful stop may take before in-flight work is abandoned", &c.ShutdownGrace},
		{PipelineOptions, "ready-max-lag", "readiness fails beyond this many unapplied ledger records", &c.ReadyMaxLag},
		{ReconcileOptions, "reconcile-tolerance", "differences reconciliation accepts, per location: *=2;DC-EAST=5,1% (empty: none)", &c.Reconcile.Tolerance},
		{ReconcileOptions, "reconcile-end-timeout", "a snapshot silent this long without its end record is incomplete", &c.Reconcile.EndTimeout},
		{ReconcileOptions, "reconcile-auto-apply-units", "apply drifts of at most this many units as a snapshot's run completes (0: report only)", &c.Reconcile.AutoApplyUnits},
		{ReconcileOptions, "reconcile-retention", "how long reconciliation runs and their exceptions are kept", &c.Reconcile.Retention},
		{ReconcileOptions, "reconcile-max-lines", "the most lines one snapshot may carry", &c.Reconcile.MaxLines},
		{ReconcileOptions, "reconcile-max-exceptions", "the most exceptions one reconciliation run stores; past it they are only counted", &c.Reconcile.MaxExceptions},
		{LogOptions, "log-level", "log level: debug, info, warn, error", &c.LogLevel},
		{LogOptions, "log-format", "log format: json, text, or auto (text on a terminal)", &c.LogFormat},
		{TraceOptions, "otlp-endpoint", "OTLP endpoint for traces, e.g. http://127.0.0.1:4318 (empty: tracing off)", &c.OTLPEndpoint},
		{TraceOptions, "trace-sample-ratio", "ratio of new traces sampled (0..1]", &c.TraceSampleRatio},
		{TraceOptions, "jaeger-ui-url", "Jaeger UI address the console links traces to, e.g. http://127.0.0.1:16686 (empty: no links)", &c.JaegerUIURL},
	}...)
}

// topicOptions are the options naming the topics.
func (c *Config) topicOptions() []option {
	return []option{
		{TopicOptions, "topic-inventory", "WMS inventory events topic", &c.Topics.Inventory},
		{TopicOptions, "topic-orders", "order events topic", &c.Topics.Orders},
		{TopicOptions, "topic-supplier", "supplier events topic", &c.Topics.Supplier},
		{TopicOptions, "topic-catalog", "item master topic (compacted)", &c.Topics.Catalog},
		{TopicOptions, "topic-ledger", "the ledger log topic", &c.Topics.Ledger},
		{TopicOptions, "topic-holds", "hold requests and releases, co-partitioned with the ledger", &c.Topics.Holds},
		{TopicOptions, "topic-availability", "availability changes topic (compacted)", &c.Topics.Availability},
		{TopicOptions, "topic-alerts", "stock alerts topic", &c.Topics.Alerts},
		{TopicOptions, "topic-dlq", "dead-letter topic", &c.Topics.DLQ},
		{TopicOptions, "topic-index", "the normalizers' document index topic (compacted)", &c.Topics.Index},
		{TopicOptions, "topic-snapshots", "stock snapshots to reconcile", &c.Topics.Snapshots},
		{TopicOptions, "topic-reconciliation", "reconciliation exceptions and run summaries", &c.Topics.Reconciliation},
		{TopicOptions, "topic-commitments", "order lines' promises as supply moves, keyed by order id", &c.Topics.Commitments},
	}
}

// Env is the configuration as the environment variables that set it, one
// NAME=value for every option (false and zero values included), so that a
// child process started with them runs with exactly this configuration.
// Secrets are included: give the list to a child process only.
func (c *Config) Env() []string {
	var env []string
	for _, o := range c.options() {
		v := defaultText(o.ptr)
		switch p := o.ptr.(type) {
		case *bool:
			v = strconv.FormatBool(*p)
		case *int:
			v = strconv.Itoa(*p)
		case *float64:
			v = strconv.FormatFloat(*p, 'g', -1, 64)
		case *time.Duration:
			v = p.String()
		}
		env = append(env, EnvName(o.flag)+"="+v)
	}
	return env
}

// EnvName is the environment variable of a flag: STOCKFLOW_ + upper snake case.
func EnvName(flagName string) string {
	return "STOCKFLOW_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Loader loads a Config for one subcommand. Register subcommand flags on
// FlagSet before calling Load.
type Loader struct {
	FlagSet *flag.FlagSet
	// Stores is true for commands that run the pipeline and so need both
	// Kafka and Redis (or neither, for embedded mode). Default: whether
	// the command takes RedisOptions.
	Stores bool
	cfg    Config
	set    map[string]string
	file   string
}

// NewLoader returns a loader whose flag set is named name; parse errors and
// -h output go to out. It registers -config and the flags of the groups
// given (or of every group when none is); the file and the environment may
// set any setting whatever the groups.
func NewLoader(name string, out io.Writer, groups ...OptionGroup) *Loader {
	var take OptionGroup
	for _, g := range groups {
		take |= g
	}
	if len(groups) == 0 {
		take = AllOptions
	}
	l := &Loader{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), Stores: take&RedisOptions != 0, cfg: Default(), set: map[string]string{}}
	l.FlagSet.SetOutput(out)
	l.FlagSet.StringVar(&l.file, "config", "", "YAML configuration file (env STOCKFLOW_CONFIG)")
	for _, o := range l.cfg.options() {
		if o.group&take == 0 {
			continue
		}
		l.FlagSet.Func(o.flag, o.usage+" (env "+EnvName(o.flag)+")", func(v string) error {
			l.set[o.flag] = v
			return nil
		})
		// -h prints a flag's default after its usage, as for any other
		// flag, and none when it is the zero value.
		l.FlagSet.Lookup(o.flag).DefValue = defaultText(o.ptr)
	}
	return l
}

// defaultText is the value ptr points to as -h shows it: as a flag or an
// environment variable would set it, empty for a zero value.
func defaultText(ptr any) string {
	switch p := ptr.(type) {
	case *string:
		return *p
	case *int:
		if *p != 0 {
			return strconv.Itoa(*p)
		}
	case *bool:
		if *p {
			return "true"
		}
	case *float64:
		if *p != 0 {
			return strconv.FormatFloat(*p, 'g', -1, 64)
		}
	case *time.Duration:
		if *p != 0 {
			// 10m rather than 10m0s.
			s := p.String()
			if strings.HasSuffix(s, "m0s") {
				s = strings.TrimSuffix(s, "0s")
			}
			if strings.HasSuffix(s, "h0m") {
				s = strings.TrimSuffix(s, "0m")
			}
			return s
		}
	case *[]string:
		return strings.Join(*p, ",")
	}
	return ""
}

// Load parses args, then applies defaults < file < environment < flags and
// validates. getenv is os.Getenv outside tests. Every problem is reported in
// one error.
func (l *Loader) Load(args []string, getenv func(string) string) (Config, error) {
	if err := l.FlagSet.Parse(args); err != nil {
		return Config{}, err
	}
	cfg := l.cfg
	file := l.file
	if file == "" {
		file = getenv("STOCKFLOW_CONFIG")
	}
	var errs []error
	if file != "" {
		if err := readFile(file, &cfg); err != nil {
			errs = append(errs, err)
		}
	}
	opts := cfg.options()
	for _, o := range opts {
		if v := getenv(EnvName(o.flag)); v != "" {
			if err := assign(o.ptr, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvName(o.flag), err))
			}
		}
	}
	for _, o := range opts {
		if v, ok := l.set[o.flag]; ok {
			if err := assign(o.ptr, v); err != nil {
				errs = append(errs, fmt.Errorf("-%s: %w", o.flag, err))
			}
		}
	}
	cfg.Embedded = len(cfg.Kafka.Brokers) == 0 && !cfg.Redis.Configured()
	if l.Stores {
		if len(cfg.Kafka.Brokers) == 0 && cfg.Redis.Configured() {
			errs = append(errs, errors.New("kafka brokers: required when a Redis address is set (set neither for embedded mode)"))
		}
		if len(cfg.Kafka.Brokers) > 0 && !cfg.Redis.Configured() {
			errs = append(errs, errors.New("redis addr: required when Kafka brokers are set (-redis-addr, or -redis-cluster-addrs; set neither for embedded mode)"))
		}
	}
	if cfg.Embedded && l.Stores && cfg.Redis.UsesTLS() {
		errs = append(errs, errors.New("redis tls: set with no -redis-addr, but the embedded Redis has no TLS"))
	}
	if cfg.Embedded && l.Stores && (cfg.Kafka.UsesTLS() || cfg.Kafka.SASLMechanism != "") {
		errs = append(errs, errors.New("kafka tls and sasl: set with no -kafka-brokers, but the embedded Kafka has neither"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Config{}, &Error{errs: errs}
	}
	if cfg.Redis.PasswordFile != "" {
		// Read once here, so a rotated file takes effect at the next start;
		// cleared so the result validates again as it stands.
		pw, err := readPasswordFile(cfg.Redis.PasswordFile)
		if err != nil {
			return Config{}, &Error{errs: []error{fmt.Errorf("redis password file: %w", err)}}
		}
		cfg.Redis.Password, cfg.Redis.PasswordFile = pw, ""
	}
	if cfg.Kafka.SASLPasswordFile != "" {
		// As for Redis: read once, at start.
		pw, err := readPasswordFile(cfg.Kafka.SASLPasswordFile)
		if err != nil {
			return Config{}, &Error{errs: []error{fmt.Errorf("kafka sasl password file: %w", err)}}
		}
		cfg.Kafka.SASLPassword, cfg.Kafka.SASLPasswordFile = pw, ""
	}
	return cfg, nil
}

// Error lists every configuration problem found.
type Error struct{ errs []error }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, err := range e.errs {
		for _, line := range strings.Split(err.Error(), "\n") {
			b.WriteString("\n  - ")
			b.WriteString(line)
		}
	}
	return b.String()
}

// Unwrap returns the individual problems.
func (e *Error) Unwrap() []error { return e.errs }

func readFile(path string, cfg *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer func() { _ = f.Close() }() // only read
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func assign(ptr any, v string) error {
	switch p := ptr.(type) {
	case *string:
		*p = v
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		*p = b
	case *float64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", v)
		}
		*p = f
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 20s", v)
		}
		*p = d
	case *[]string:
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		*p = out
	default:
		return fmt.Errorf("unsupported setting type %T", ptr)
	}
	return nil
}

var (
	topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
	keyPrefix = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)
)

// Validate reports every problem with c at once, each naming its setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	c.validateAddrsAndRedis(bad)
	errs = append(errs, c.Kafka.securityProblems()...)
	c.validateKafka(bad)
	c.validateTopics(bad)
	c.validateEndpoints(bad)
	c.validateProcess(bad)
	c.validateAPI(bad)
	c.validateReconcile(bad)
	return errors.Join(errs...)
}

// complaint records one thing wrong with the configuration.
type complaint func(format string, a ...any)

// validateAddrsAndRedis checks the Kafka and Redis addresses and the Redis settings.
func (c *Config) validateAddrsAndRedis(bad complaint) {
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			bad("kafka brokers: %q is not host:port", b)
		}
	}
	if c.Redis.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Redis.Addr); err != nil {
			bad("redis addr: %q is not host:port", c.Redis.Addr)
		}
	}
	for _, a := range c.Redis.ClusterAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("redis cluster addrs: %q is not host:port", a)
		}
	}
	if c.Redis.Addr != "" && len(c.Redis.ClusterAddrs) > 0 {
		bad("redis cluster addrs: set with -redis-addr too; a Redis Cluster is given by its seeds alone")
	}
	if len(c.Redis.ClusterAddrs) > 0 && c.Redis.DB != 0 {
		bad("redis db: %d, but a Redis Cluster has database 0 only", c.Redis.DB)
	}
	if c.Redis.Password != "" && c.Redis.PasswordFile != "" {
		bad("redis password: set both -redis-password and -redis-password-file; choose one")
	}
	if c.Redis.PasswordFile != "" {
		if _, err := readPasswordFile(c.Redis.PasswordFile); err != nil {
			bad("redis password file: %v", err)
		}
	}
	if c.Redis.UsesTLS() {
		for _, err := range c.Redis.tlsProblems() {
			bad("redis tls: %v", err)
		}
	}
	if c.Redis.DB < 0 || c.Redis.DB > 15 {
		bad("redis db: %d is outside 0..15", c.Redis.DB)
	}
	if !keyPrefix.MatchString(c.Redis.KeyPrefix) {
		bad("redis key prefix: %q is not 1 to 32 letters, digits, '.', '_' or '-'", c.Redis.KeyPrefix)
	}
	if c.Redis.LookupCacheEntries < 1 || c.Redis.LookupCacheEntries > 100_000_000 {
		bad("lookup cache entries: %d is outside 1..100000000", c.Redis.LookupCacheEntries)
	}
	if c.Redis.LookupCacheMaxAge < 10*time.Millisecond || c.Redis.LookupCacheMaxAge > time.Hour {
		bad("lookup cache max age: %v is outside 10ms..1h", c.Redis.LookupCacheMaxAge)
	}
}

// validateKafka checks the Kafka client, group and topic-creation settings.
func (c *Config) validateKafka(bad complaint) {
	if c.Kafka.ClientID == "" {
		bad("kafka client id: must not be empty")
	}
	if c.Kafka.NormalizerGroup == "" || c.Kafka.FolderGroup == "" || c.Kafka.ReconcilerGroup == "" {
		bad("kafka groups: normalizer, folder and reconciler group must not be empty")
	} else if c.Kafka.NormalizerGroup == c.Kafka.FolderGroup || c.Kafka.ReconcilerGroup == c.Kafka.FolderGroup || c.Kafka.ReconcilerGroup == c.Kafka.NormalizerGroup {
		bad("kafka groups: normalizer, folder and reconciler groups must differ (%q, %q, %q)", c.Kafka.NormalizerGroup, c.Kafka.FolderGroup, c.Kafka.ReconcilerGroup)
	}
	if c.Kafka.Partitions < 1 || c.Kafka.Partitions > 10000 {
		bad("kafka partitions: %d is outside 1..10000", c.Kafka.Partitions)
	}
	if c.Kafka.FetchMaxBytes < 64<<10 || c.Kafka.FetchMaxBytes > 256<<20 {
		bad("kafka fetch max bytes: %d is outside 65536..268435456", c.Kafka.FetchMaxBytes)
	}
	if c.Kafka.SessionTimeout < 6*time.Second || c.Kafka.SessionTimeout > 5*time.Minute {
		bad("kafka session timeout: %v is outside 6s..5m (the broker's usual bounds)", c.Kafka.SessionTimeout)
	}
	if c.Kafka.Replication < 1 || c.Kafka.Replication > 32 {
		bad("kafka replication: %d is outside 1..32", c.Kafka.Replication)
	}
	if c.Kafka.MinInsyncReplicas < 0 || c.Kafka.MinInsyncReplicas > c.Kafka.Replication {
		bad("kafka min insync replicas: %d is outside 0..%d (the replication)", c.Kafka.MinInsyncReplicas, c.Kafka.Replication)
	}
}

// validateTopics checks that every topic name is valid and used once.
func (c *Config) validateTopics(bad complaint) {
	seen := map[string]string{}
	for _, t := range []struct{ name, value string }{
		{"inventory", c.Topics.Inventory}, {"orders", c.Topics.Orders}, {"supplier", c.Topics.Supplier},
		{"catalog", c.Topics.Catalog}, {"ledger", c.Topics.Ledger}, {"holds", c.Topics.Holds}, {"availability", c.Topics.Availability},
		{"alerts", c.Topics.Alerts}, {"dlq", c.Topics.DLQ}, {"index", c.Topics.Index},
		{"snapshots", c.Topics.Snapshots}, {"reconciliation", c.Topics.Reconciliation}, {"commitments", c.Topics.Commitments},
	} {
		if !topicName.MatchString(t.value) {
			bad("topic %s: %q is not a valid topic name", t.name, t.value)
			continue
		}
		if other, dup := seen[t.value]; dup {
			bad("topic %s: %q is already the %s topic", t.name, t.value, other)
		}
		seen[t.value] = t.name
	}
}

// validateEndpoints checks the schema registry, HTTP, OTLP and Jaeger addresses.
func (c *Config) validateEndpoints(bad complaint) {
	if c.SchemaRegistry != "" {
		if u, err := url.Parse(c.SchemaRegistry); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("schema registry url: %q is not an http(s) URL", redactURL(c.SchemaRegistry))
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("http addr: %q is not host:port", c.HTTPAddr)
	}
	if c.DebugAddr != "" {
		// Profiles answer anyone who reaches them, and a CPU profile costs
		// the process; so this machine only.
		if h, _, err := net.SplitHostPort(c.DebugAddr); err != nil {
			bad("debug addr: %q is not host:port", c.DebugAddr)
		} else if ip, err := netip.ParseAddr(h); h != "localhost" && (err != nil || !ip.IsLoopback()) {
			bad("debug addr: %q is not a loopback address (127.0.0.1, [::1] or localhost): profiles have no authentication", c.DebugAddr)
		}
	}
	if c.OTLPEndpoint != "" {
		if u, err := url.Parse(c.OTLPEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("otlp endpoint: %q is not an http(s) URL such as http://127.0.0.1:4318", c.OTLPEndpoint)
		}
	}
	if c.JaegerUIURL != "" {
		if u, err := url.Parse(c.JaegerUIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("jaeger ui url: %q is not an http(s) URL such as http://127.0.0.1:16686", c.JaegerUIURL)
		}
	}
}

// validateProcess checks logging, tracing, readiness and the processors' bounds.
func (c *Config) validateProcess(bad complaint) {
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "text", "auto":
	default:
		bad("log format: %q is not json, text or auto", c.LogFormat)
	}
	if c.TraceSampleRatio <= 0 || c.TraceSampleRatio > 1 {
		bad("trace sample ratio: %v is outside (0, 1]", c.TraceSampleRatio)
	}
	if c.ReadyMaxLag < 1 {
		bad("ready max lag: %d must be >= 1", c.ReadyMaxLag)
	}
	if c.MaxRecordBytes < 1024 || c.MaxRecordBytes > 64<<20 {
		bad("max record bytes: %d is outside 1024..67108864", c.MaxRecordBytes)
	}
	if c.ShutdownGrace <= 0 {
		bad("shutdown grace: must be positive")
	}
	if c.FolderCacheSKUs < 1 || c.FolderCacheSKUs > 10_000_000 {
		bad("folder cache skus: %d is outside 1..10000000", c.FolderCacheSKUs)
	}
	if c.MemoryLimitMiB < -1 || c.MemoryLimitMiB > 1<<24 {
		bad("memory limit mib: %d is outside -1..16777216", c.MemoryLimitMiB)
	} else if c.MemoryLimitMiB > 0 && c.MemoryLimitMiB < 64 {
		bad("memory limit mib: %d is below 64, too little for the service to start", c.MemoryLimitMiB)
	}
	if c.FolderPollRecords < 100 || c.FolderPollRecords > 1_000_000 {
		bad("folder poll records: %d is outside 100..1000000", c.FolderPollRecords)
	}
	if c.FolderInFlight < 1 || c.FolderInFlight > 64 {
		bad("folder in flight: %d is outside 1..64", c.FolderInFlight)
	}
	if c.NormalizerTxnTimeout < MinNormalizerTxnTimeout || c.NormalizerTxnTimeout > MaxNormalizerTxnTimeout {
		bad("normalizer txn timeout: %v is outside %v..%v (a transaction must outlast producing and committing one poll; the broker's transaction.max.timeout.ms is 15m by default)",
			c.NormalizerTxnTimeout, MinNormalizerTxnTimeout, MaxNormalizerTxnTimeout)
	}
	if c.NormalizerAlign < 0 || c.NormalizerAlign > time.Hour {
		bad("normalizer align: %v is outside 0s..1h", c.NormalizerAlign)
	}
	if c.NormalizerFetchMaxBytes < 64<<10 || c.NormalizerFetchMaxBytes > 256<<20 {
		bad("normalizer fetch max bytes: %d is outside 65536..268435456", c.NormalizerFetchMaxBytes)
	}
}

// validateAPI checks the API's groups, rules, policy, keys and limits.
func (c *Config) validateAPI(bad complaint) {
	p := &c.API.Parsed
	var err error
	if p.Groups, err = ParseGroups(c.API.Groups); err != nil {
		bad("groups: %v", err)
	}
	if p.ChannelRules, err = atp.ParseChannelRules(c.API.ChannelRules); err != nil {
		bad("channel rules: %v", err)
	}
	if p.Supply, err = ParseSupplyPolicy(c.API.SupplyPolicy); err != nil {
		bad("supply policy: %v", err)
	}
	if p.Keys, err = ParseAPIKeys(c.API.Keys); err != nil {
		bad("api keys: %v", err)
	}
	if c.API.RateLimit < 0 {
		bad("rate limit: %v must be >= 0", c.API.RateLimit)
	}
	if c.API.HoldTimeout < 100*time.Millisecond || c.API.HoldTimeout > time.Minute {
		bad("hold timeout: %v is outside 100ms..1m", c.API.HoldTimeout)
	}
	if p.TrustedProxies, err = ParseTrustedProxies(c.API.TrustedProxies); err != nil {
		bad("trusted proxies: %v", err)
	}
}

// validateReconcile checks reconciliation's tolerance, timeouts and caps.
func (c *Config) validateReconcile(bad complaint) {
	var err error
	if c.Reconcile.Tolerances, err = ParseTolerances(c.Reconcile.Tolerance); err != nil {
		bad("reconcile tolerance: %v", err)
	}
	if c.Reconcile.EndTimeout < time.Second || c.Reconcile.EndTimeout > 24*time.Hour {
		bad("reconcile end timeout: %v is outside 1s..24h", c.Reconcile.EndTimeout)
	}
	if c.Reconcile.AutoApplyUnits < 0 {
		bad("reconcile auto apply units: %d must be >= 0", c.Reconcile.AutoApplyUnits)
	}
	if c.Reconcile.Retention < time.Hour {
		bad("reconcile retention: %v is shorter than 1h", c.Reconcile.Retention)
	}
	// A running snapshot holds about 40 bytes per line in memory.
	if c.Reconcile.MaxLines < 1 || c.Reconcile.MaxLines > 10_000_000 {
		bad("reconcile max lines: %d is outside 1..10000000", c.Reconcile.MaxLines)
	}
	if c.Reconcile.MaxExceptions < 1 || c.Reconcile.MaxExceptions > 10_000_000 {
		bad("reconcile max exceptions: %d is outside 1..10000000", c.Reconcile.MaxExceptions)
	}
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ParseGroups reads GROUP=LOC,LOC;GROUP=LOC. A location may belong to several groups.
func ParseGroups(s string) (map[string][]string, error) {
	out := map[string][]string{}
	var errs []error
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, locs, ok := strings.Cut(part, "=")
		if !ok || !idPattern.MatchString(name) {
			errs = append(errs, fmt.Errorf("%q: want GROUP=LOC,LOC with ids of [A-Za-z0-9._-]", part))
			continue
		}
		for _, l := range strings.Split(locs, ",") {
			l = strings.TrimSpace(l)
			if !idPattern.MatchString(l) {
				errs = append(errs, fmt.Errorf("group %s: location %q is not a valid id", name, l))
				continue
			}
			out[name] = append(out[name], l)
		}
	}
	return out, errors.Join(errs...)
}

// ParseSupplyPolicy reads a comma-separated list of supply kinds.
func ParseSupplyPolicy(s string) (atp.SupplyPolicy, error) {
	var p atp.SupplyPolicy
	for _, k := range strings.Split(s, ",") {
		switch strings.TrimSpace(k) {
		case "asn":
			p.ASN = true
		case "acknowledged":
			p.Acknowledged = true
		case "released":
			p.Released = true
		case "":
		default:
			return p, fmt.Errorf("%q is not one of asn, acknowledged, released", k)
		}
	}
	return p, nil
}

// API key scopes.
const (
	ScopeRead  = "read"
	ScopeHold  = "hold"
	ScopeAdmin = "admin"
)

// ParseAPIKeys reads token=scope,scope;token=scope into token → scopes.
func ParseAPIKeys(s string) (map[string][]string, error) {
	out := map[string][]string{}
	var errs []error
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		tok, scopes, ok := strings.Cut(part, "=")
		if !ok || len(tok) < 16 {
			errs = append(errs, fmt.Errorf("a key must be token=scopes with a token of at least 16 characters"))
			continue
		}
		for _, sc := range strings.Split(scopes, ",") {
			switch sc = strings.TrimSpace(sc); sc {
			case ScopeRead, ScopeHold, ScopeAdmin:
				out[tok] = append(out[tok], sc)
			default:
				errs = append(errs, fmt.Errorf("scope %q is not one of read, hold, admin", sc))
			}
		}
	}
	return out, errors.Join(errs...)
}

// ParseTrustedProxies reads addresses (10.0.0.7, fd00::1) and CIDR blocks
// (10.0.0.0/8) into prefixes. A block must be written as its network
// address: 10.1.2.3/8 is refused rather than read as 10.0.0.0/8.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, v := range list {
		if strings.Contains(v, "/") {
			p, err := netip.ParsePrefix(v)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%q is not an address or a CIDR block", v))
			case p != p.Masked():
				errs = append(errs, fmt.Errorf("%q is not a network address; did you mean %s?", v, p.Masked()))
			default:
				out = append(out, p)
			}
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("%q is not an address or a CIDR block", v))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// redactURL is a URL for a message, its password (if any) replaced. An
// unparsable one is not quoted at all: it may hold a secret.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
