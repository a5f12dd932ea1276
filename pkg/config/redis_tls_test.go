package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsFiles writes a CA, and a client certificate it signed with its key,
// as PEM files in a temporary directory.
func tlsFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.crt", "CERTIFICATE", caDER), write("client.crt", "CERTIFICATE", leafDER), write("client.key", "EC PRIVATE KEY", keyDER)
}

func stores(extra ...string) []string {
	return append([]string{"-kafka-brokers=k:9092", "-redis-addr=redis.internal:6380"}, extra...)
}

func TestRedisTLSSettingsLoad(t *testing.T) {
	ca, cert, key := tlsFiles(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("s3cret with space\n"), 0o600)
	cfg, err := NewLoader("serve", io.Discard).Load(stores(
		"-redis-username=stockflow", "-redis-password-file="+pwFile,
		"-redis-tls-cert="+cert, "-redis-tls-key="+key),
		env(map[string]string{"STOCKFLOW_REDIS_TLS_CA": ca}))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redis
	if r.Username != "stockflow" || r.Password != "s3cret with space" || r.PasswordFile != "" {
		t.Fatalf("user %q, password read %v, file %q", r.Username, r.Password == "s3cret with space", r.PasswordFile)
	}
	if r.TLS || !r.UsesTLS() {
		t.Fatal("the TLS files must imply TLS without -redis-tls")
	}
	tc, err := r.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "redis.internal" || tc.MinVersion < 0x0303 || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify {
		t.Fatalf("tls config: name %q, min %x, roots %v, certs %d, skip %v", tc.ServerName, tc.MinVersion, tc.RootCAs != nil, len(tc.Certificates), tc.InsecureSkipVerify)
	}
	// The loaded configuration validates again as it stands.
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	cfg, err = NewLoader("serve", io.Discard).Load(stores("-redis-tls-server-name=redis.example"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := cfg.Redis.TLSConfig(); tc == nil || tc.ServerName != "redis.example" || tc.RootCAs != nil {
		t.Fatalf("server name alone: %+v", tc)
	}
	if tc, _ := (Redis{Addr: "r:1"}).TLSConfig(); tc != nil {
		t.Fatal("no TLS setting: no TLS")
	}
}

// Every problem with the new settings is reported, all at once.
func TestRedisTLSSettingsValidate(t *testing.T) {
	ca, cert, _ := tlsFiles(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	_, err := NewLoader("serve", io.Discard).Load(stores(
		"-redis-password=x", "-redis-password-file="+empty,
		"-redis-tls-ca="+garbage, "-redis-tls-cert="+cert, "-redis-tls-key="+ca), env(nil))
	want := []string{
		"redis password: set both -redis-password and -redis-password-file",
		"redis password file: " + empty + " is empty",
		"redis tls: ca " + garbage + ": no PEM certificate in the file",
		"redis tls: client certificate " + cert + " with key " + ca + ":",
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nlacks %q", err, w)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-redis-tls-cert=" + cert}, "-redis-tls-cert is set without -redis-tls-key"},
		{[]string{"-redis-tls-key=" + cert}, "-redis-tls-key is set without -redis-tls-cert"},
		{[]string{"-redis-tls-ca=" + filepath.Join(dir, "missing.pem")}, "missing.pem: no such file"},
		{[]string{"-redis-password-file=" + filepath.Join(dir, "missing")}, "redis password file: open"},
	} {
		_, err := NewLoader("serve", io.Discard).Load(stores(tc.args...), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
	}
	// The embedded Redis has no TLS: asking for it is a mistake, not a
	// setting to ignore.
	_, err = NewLoader("serve", io.Discard).Load([]string{"-redis-tls-ca=" + ca}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "the embedded Redis has no TLS") {
		t.Errorf("embedded with TLS: %v", err)
	}
}

// Printing the configuration never shows the Redis password.
func TestRedisPasswordRedacted(t *testing.T) {
	cfg := Default()
	cfg.Redis.Addr, cfg.Redis.Username, cfg.Redis.Password = "r:6379", "stockflow", "hunter2-secret"
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%v", cfg.Redis), cfg.Redis.LogValue().String()} {
		if strings.Contains(s, "hunter2-secret") || !strings.Contains(s, "[redacted]") {
			t.Fatalf("printed %s", s)
		}
	}
}
