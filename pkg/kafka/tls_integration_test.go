//go:build integration

package kafka_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/testenv"
)

// Over SASL_SSL, with each mechanism configured as an operator writes it
// (flags, the password and token in files), a client creates a topic,
// produces to it and another client reads the record back.
func TestSASLSSLProduceConsume(t *testing.T) {
	dir := testenv.KafkaTLSDir(t)
	sasl := config.Default().Kafka
	testenv.KafkaSASL(t, &sasl, config.SASLScramSHA512)
	common := []string{"-kafka-brokers=" + sasl.Brokers[0], "-redis-addr=127.0.0.1:6379", "-kafka-tls-ca=" + testenv.KafkaTLSFile(t, "ca.crt")}
	user := []string{"-kafka-sasl-username=stockflow", "-kafka-sasl-password-file=" + filepath.Join(dir, "password")}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(testenv.UnsignedJWT("stockflow", time.Now().Add(time.Hour))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"PLAIN", append([]string{"-kafka-sasl-mechanism=plain"}, user...)},
		{"SCRAM-SHA-256", append([]string{"-kafka-sasl-mechanism=scram-sha-256"}, user...)},
		{"SCRAM-SHA-512", append([]string{"-kafka-sasl-mechanism=scram-sha-512"}, user...)},
		{"OAUTHBEARER token file", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-file=" + token}},
		{"OAUTHBEARER token command", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-command=cat " + token}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.NewLoader("serve", io.Discard).Load(append(common, tc.args...), func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			roundTrip(t, cfg.Kafka)
		})
	}
}

// The SSL listener that requires a client certificate takes the one
// signed by its CA.
func TestClientCertificateListener(t *testing.T) {
	k := config.Default().Kafka
	testenv.KafkaMTLS(t, &k)
	roundTrip(t, k)
}

// The token file is read again at each authentication: a token rewritten
// between two connections is the one the broker sees, refused when it has
// expired, accepted again once replaced.
func TestOAuthBearerTokenRotation(t *testing.T) {
	k := config.Default().Kafka
	testenv.KafkaSASL(t, &k, config.SASLOAuthBearer)
	write := func(exp time.Time) {
		t.Helper()
		if err := os.WriteFile(k.SASLTokenFile, []byte(testenv.UnsignedJWT("stockflow", exp)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := ping(t, k); err != nil {
		t.Fatalf("first token: %v", err)
	}
	write(time.Now().Add(-time.Minute))
	cl, err := kgo.NewClient(kafka.Conn(k)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = kafka.Ping(ctx, cl, k)
	want := "kafka: SASL authentication failed for the token in " + k.SASLTokenFile + " with mechanism OAUTHBEARER at " + k.Brokers[0]
	if err == nil || !strings.HasPrefix(err.Error(), want) || !kafka.Misconfigured(err) {
		t.Fatalf("expired token: got %v, want %q", err, want)
	}
	// The same client, its next connection: the new token is read.
	write(time.Now().Add(time.Hour))
	if err := kafka.Ping(ctx, cl, k); err != nil {
		t.Fatalf("rotated token: %v", err)
	}
	roundTrip(t, k)
}

// A wrong password is reported naming the user and mechanism, and never
// shows the password tried.
func TestSASLWrongPassword(t *testing.T) {
	for _, mech := range []string{config.SASLPlain, config.SASLScramSHA256, config.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			k := config.Default().Kafka
			testenv.KafkaSASL(t, &k, mech)
			k.SASLPassword = "not-the-password-" + testenv.Suffix()
			err := ping(t, k)
			want := "kafka: SASL authentication failed for user stockflow with mechanism " + strings.ToUpper(mech) + " at " + k.Brokers[0]
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("got %v, want it to start with %q", err, want)
			}
			if strings.Contains(err.Error(), k.SASLPassword) {
				t.Fatalf("the error shows the password: %v", err)
			}
			if !kafka.Misconfigured(err) {
				t.Fatal("a wrong password is not reported as a misconfiguration")
			}
		})
	}
}

// TLS verification failures are said plainly, naming the file or the
// setting to change, and are misconfigurations.
func TestTLSVerificationFailures(t *testing.T) {
	t.Run("wrong CA", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
		k.TLSCA = testenv.KafkaTLSFile(t, "other-ca.crt")
		expectMisconfigured(t, ping(t, k), "kafka: TLS handshake with "+k.Brokers[0]+" failed: the broker's certificate is signed by an unknown authority, not by a CA in "+k.TLSCA)
	})
	t.Run("server name", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
		k.TLSServerName = "localhost"
		if err := ping(t, k); err != nil {
			t.Fatalf("localhost is in the certificate: %v", err)
		}
		k.TLSServerName = "kafka.example"
		expectMisconfigured(t, ping(t, k), "not kafka.example (set -kafka-tls-server-name")
	})
	t.Run("expired broker certificate", func(t *testing.T) {
		// The local broker's certificate is valid: a TLS listener of the
		// test's own shows an expired one, as a broker would.
		addr, ca := expiredTLSServer(t)
		k := config.Default().Kafka
		k.Brokers, k.TLSCA = []string{addr}, ca
		expectMisconfigured(t, ping(t, k), "kafka: TLS handshake with "+addr+" failed: the broker's certificate has expired: current time ")
	})
	t.Run("no client certificate", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaMTLS(t, &k)
		k.TLSCert, k.TLSKey = "", ""
		expectMisconfigured(t, ping(t, k), "the broker probably requires a client certificate (set -kafka-tls-cert and -kafka-tls-key)")
	})
	t.Run("expired client certificate", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaMTLS(t, &k)
		k.TLSCert, k.TLSKey = testenv.KafkaTLSFile(t, "client-expired.crt"), testenv.KafkaTLSFile(t, "client-expired.key")
		err := ping(t, k)
		expectMisconfigured(t, err, "kafka: TLS handshake with "+k.Brokers[0]+" failed: the broker refused it (tls: ")
		expectMisconfigured(t, err, "the client certificate "+k.TLSCert+" expired at 2020-01-02T00:00:00Z")
	})
}

// A client speaking the wrong protocol for the port is told which way
// round it is.
func TestProtocolMismatch(t *testing.T) {
	plainAddr := testenv.KafkaBrokers(t)[0]
	t.Run("TLS to the plaintext port", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
		k.Brokers = []string{plainAddr}
		expectMisconfigured(t, ping(t, k), "kafka: TLS to a plaintext port: the broker at "+plainAddr)
	})
	t.Run("plaintext to the TLS port", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
		k.TLSCA, k.SASLMechanism, k.SASLUsername, k.SASLPassword = "", "", "", ""
		expectMisconfigured(t, ping(t, k), "kafka: plaintext to a TLS port: the broker at "+k.Brokers[0]+" expects TLS (set -kafka-tls")
	})
	t.Run("SASL to a listener without it", func(t *testing.T) {
		k := config.Default().Kafka
		testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
		k.Brokers, k.TLSCA = []string{plainAddr}, ""
		expectMisconfigured(t, ping(t, k), "kafka: the listener at "+plainAddr+" does not use SASL (SCRAM-SHA-512 was tried)")
	})
}

// A seed where no broker listens may come up later: it is not a
// misconfiguration, and WaitReady keeps trying until its context ends.
func TestUnreachableSeed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	k := config.Default().Kafka
	testenv.KafkaSASL(t, &k, config.SASLScramSHA512)
	k.Brokers = []string{addr}
	err = ping(t, k)
	if err == nil || err.Error() != "kafka: connection refused at "+addr+" (no broker listening there, or not yet)" {
		t.Fatalf("got %v", err)
	}
	if kafka.Misconfigured(err) {
		t.Fatal("a refused connection may heal; it is not a misconfiguration")
	}
	cl, err := kgo.NewClient(kafka.ClientOpts(k)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logged := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- kafka.WaitReady(ctx, kadm.NewClient(cl), k, slog.New(slog.NewTextHandler(logged, nil)))
	}()
	// It tries again after its first failure, and does not give up on its
	// own: the bound is on the test, not on how fast it retries.
	for deadline := time.Now().Add(30 * time.Second); strings.Count(logged.String(), "kafka not reachable yet") < 2; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("WaitReady gave up while the seed was merely unreachable: %v\n%s", err, logged.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("WaitReady did not try a second time within 30s:\n%s", logged.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "kafka: connection refused at "+addr) {
			t.Fatalf("wait: %v, want it to end with its context, naming the last error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WaitReady did not return within 30s of its context ending")
	}
}

// syncBuffer is a strings.Builder that a logger may write to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// WaitReady gives up at once on a misconfiguration, with its reason.
func TestWaitReadyStopsOnWrongCredentials(t *testing.T) {
	k := config.Default().Kafka
	testenv.KafkaSASL(t, &k, config.SASLScramSHA256)
	k.SASLPassword = "wrong-" + testenv.Suffix()
	cl, err := kgo.NewClient(kafka.ClientOpts(k)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = kafka.WaitReady(ctx, kadm.NewClient(cl), k, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !kafka.Misconfigured(err) || !strings.Contains(err.Error(), "SASL authentication failed for user stockflow") {
		t.Fatalf("got %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("WaitReady waited for its context instead of stopping")
	}
}

func expectMisconfigured(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant it to contain %q", err, want)
	}
	if !kafka.Misconfigured(err) {
		t.Fatalf("not a misconfiguration: %v", err)
	}
	t.Log(err)
}

// ping makes a client of k and returns its first connection's outcome,
// explained.
func ping(t *testing.T, k config.Kafka) error {
	t.Helper()
	cl, err := kgo.NewClient(kafka.Conn(k)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return kafka.Ping(ctx, cl, k)
}

// roundTrip creates a topic through k, produces a record to it, reads it
// back with a second client, and deletes the topic.
func roundTrip(t *testing.T, k config.Kafka) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := "stockflow.tls-test." + testenv.Suffix()
	prod, err := kgo.NewClient(kafka.ClientOpts(k, kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	adm := kadm.NewClient(prod)
	if err := kafka.EnsureTopics(ctx, adm, 1, 1, []kafka.TopicSpec{{Name: topic}}); err != nil {
		t.Fatal(kafka.Explain(k, err))
	}
	defer adm.DeleteTopics(context.WithoutCancel(ctx), topic)
	value := "secured " + testenv.Suffix()
	if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(kafka.Explain(k, err))
	}
	cons, err := kgo.NewClient(append(kafka.Conn(k), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	fs := cons.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(kafka.Explain(k, err))
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != value {
		t.Fatalf("read back %v, want one record %q", recs, value)
	}
}

// expiredTLSServer listens with TLS on a free port, presenting a
// certificate for 127.0.0.1 that expired yesterday, and returns its
// address and the CA file that signed the certificate.
func expiredTLSServer(t *testing.T) (addr, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "expiry test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caTmpl, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "expiry-ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return ln.Addr().String(), caFile
}
