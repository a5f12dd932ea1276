//go:build integration

package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/ledger"
	"github.com/stockflow/stockflow/pkg/store"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// Over TLS with the private CA, the client certificate and the ACL user,
// the configuration as an operator writes it (password from a file) gives
// clients that do what the service does: the ledger's keys and scripts,
// SET/GET, EVAL, and the lookup cache's tracked reads with invalidation.
func TestTLSRedisACLUserRunsTheLedger(t *testing.T) {
	ctx := context.Background()
	sec := testenv.RedisTLS(t)
	dir := testenv.RedisTLSDir(t)
	l := config.NewLoader("serve", new(strings.Builder))
	cfg, err := l.Load([]string{
		"-kafka-brokers=127.0.0.1:9092", "-redis-addr=" + sec.Addr,
		"-redis-username=stockflow", "-redis-password-file=" + filepath.Join(dir, "password"),
		"-redis-tls-ca=" + sec.TLSCA, "-redis-tls-cert=" + sec.TLSCert, "-redis-tls-key=" + sec.TLSKey,
		"-redis-key-prefix=" + sec.KeyPrefix,
		// Far longer than the wait for a write below: only an invalidation
		// can bring the new value in time, never the entry's age.
		"-lookup-cache-max-age=1m",
	}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password != sec.Password {
		t.Fatal("the password file was not read into the configuration")
	}
	rdb := store.Open(cfg.Redis)
	defer rdb.Close()
	if err := store.Ping(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	who, err := rdb.Do(ctx, "ACL", "WHOAMI").Text()
	if err != nil || who != "stockflow" {
		t.Fatalf("connected as %q (%v), want stockflow", who, err)
	}

	led := ledger.New(rdb, ledger.Config{KeyPrefix: cfg.Redis.KeyPrefix})
	if err := led.CheckLayout(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	if existed, err := led.EnsureMarker(ctx, "ledger"); err != nil || existed {
		t.Fatalf("first marker: existed %v, %v", existed, err)
	}
	if refused, err := led.RecordApplied(ctx, "ledger", nil, map[int32]int64{0: 10, 3: 7}); err != nil || len(refused) > 0 {
		t.Fatalf("record applied (a script): refused %v, %v", refused, err)
	}
	got, err := led.AppliedOffsets(ctx, "ledger")
	if err != nil || got[0] != 10 || got[3] != 7 {
		t.Fatalf("applied offsets %v, %v", got, err)
	}

	k := cfg.Redis.KeyPrefix + ":plain"
	if err := rdb.Set(ctx, k, "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Eval(ctx, `return redis.call('GET', KEYS[1]) .. '!'`, []string{k}).Text(); err != nil || v != "v1!" {
		t.Fatalf("eval: %q, %v", v, err)
	}

	// The lookup cache's connections turn on CLIENT TRACKING as the same
	// user: a write must still invalidate what it has read.
	if cfg.Redis.LookupCacheMaxAge != time.Minute {
		t.Fatalf("lookup cache max age %v, want the 1m configured", cfg.Redis.LookupCacheMaxAge)
	}
	cache := store.OpenCache(cfg.Redis)
	if cache == nil {
		t.Fatal("lookup cache off")
	}
	defer cache.Close()
	h := cfg.Redis.KeyPrefix + ":{SKU-1}:pos:DC1"
	if err := rdb.HSet(ctx, h, "on_hand", 5).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := cache.HGet(ctx, h, "on_hand").Result(); err != nil || v != "5" {
		t.Fatalf("cached read: %q, %v", v, err)
	}
	// The read is now in process memory: a look that never goes to Redis
	// finds it.
	if _, ok := cache.Cached(ctx, "hget", h, "on_hand"); !ok {
		t.Fatal("the read was not cached")
	}
	before := cache.Stats()
	if err := rdb.HSet(ctx, h, "on_hand", 6).Err(); err != nil {
		t.Fatal(err)
	}
	// Bounded well inside the max age, so an entry that is never
	// invalidated keeps answering 5 and fails this.
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := cache.HGet(ctx, h, "on_hand").Result()
		if err == nil && v == "6" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cached read after a write: %q, %v; want 6 through invalidation (cache %+v)", v, err, cache.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := cache.Stats(); st.Invalidations <= before.Invalidations {
		t.Fatalf("the new value came without an invalidation: %+v then %+v", before, st)
	}
}

// A wrong password is reported as such, naming the user, and never shows
// the password tried.
func TestTLSRedisWrongPassword(t *testing.T) {
	cfg := testenv.RedisTLS(t)
	cfg.Password = "not-the-password-" + testenv.Suffix()
	err := pingOnce(t, cfg)
	want := "redis: authentication failed for user stockflow at " + cfg.Addr + " (WRONGPASS)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it to contain %q", err, want)
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Fatalf("the error shows the password: %v", err)
	}
	if !store.Misconfigured(err) {
		t.Fatal("a wrong password is not reported as a misconfiguration")
	}
}

// The default user is off on the secured Redis: connecting with no user
// and no password says authentication is needed.
func TestTLSRedisNoCredentials(t *testing.T) {
	cfg := testenv.RedisTLS(t)
	cfg.Username, cfg.Password = "", ""
	err := pingOnce(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "requires authentication (NOAUTH)") {
		t.Fatalf("got %v, want NOAUTH explained", err)
	}
}

// A CA that did not sign the server's certificate fails the handshake,
// said plainly.
func TestTLSRedisWrongCA(t *testing.T) {
	cfg := testenv.RedisTLS(t)
	cfg.TLSCA, _, _ = selfSignedCA(t)
	err := pingOnce(t, cfg)
	want := "redis: TLS handshake with " + cfg.Addr + " failed: certificate signed by unknown authority"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want it to contain %q", err, want)
	}
	if !store.Misconfigured(err) {
		t.Fatal("a wrong CA is not reported as a misconfiguration")
	}
}

// The server name is checked against the certificate (127.0.0.1 and
// localhost here), so a name it does not carry fails.
func TestTLSRedisServerName(t *testing.T) {
	cfg := testenv.RedisTLS(t)
	cfg.TLSServerName = "localhost"
	if err := pingOnce(t, cfg); err != nil {
		t.Fatalf("localhost is in the certificate: %v", err)
	}
	cfg.TLSServerName = "redis.example"
	err := pingOnce(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "not redis.example") || !strings.Contains(err.Error(), "-redis-tls-server-name") {
		t.Fatalf("got %v, want a name mismatch", err)
	}
}

// A server that requires client certificates (tls-auth-clients yes) takes
// the configured one, and refuses a client without it with an explained
// error. The shared secured Redis only asks for one, so this starts its own.
func TestTLSRedisClientCertificateRequired(t *testing.T) {
	cfg := testenv.RedisTLS(t)
	dir := testenv.RedisTLSDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", fmt.Sprint(port),
		"--tls-cert-file", filepath.Join(dir, "server.crt"), "--tls-key-file", filepath.Join(dir, "server.key"),
		"--tls-ca-cert-file", cfg.TLSCA, "--tls-auth-clients", "yes", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--user", "default", "off", "--user", "stockflow", "on", ">"+cfg.Password, "~*", "&*", "+@all", "-@dangerous")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	cfg.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", cfg.Addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server with client certificates not listening: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := pingOnce(t, cfg); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	cfg.TLSCert, cfg.TLSKey = "", ""
	err = pingOnce(t, cfg)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake with "+cfg.Addr+" failed") {
		t.Fatalf("without a client certificate: got %v, want the handshake refused", err)
	}
	t.Log(err)
}

// Connecting to a port where nothing listens says so.
func TestRedisConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = pingOnce(t, config.Redis{Addr: addr})
	if err == nil || err.Error() != "redis: connection refused at "+addr {
		t.Fatalf("got %v", err)
	}
	if store.Misconfigured(err) {
		t.Fatal("a refused connection may heal; it is not a misconfiguration")
	}
}

func pingOnce(t *testing.T, cfg config.Redis) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb := store.Open(cfg)
	defer rdb.Close()
	return store.Ping(ctx, rdb)
}

// selfSignedCA writes a CA certificate and key of its own (signing nothing
// the server has) and returns their paths.
func selfSignedCA(t *testing.T) (certPath, keyPath string, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPath = filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, "", key
}
