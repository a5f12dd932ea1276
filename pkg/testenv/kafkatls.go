package testenv

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
)

// KafkaTLSDir is where deploy/local/kafka-tls.sh keeps the local broker's
// CA, the client certificates and the SASL user's password
// ($STOCKFLOW_TEST_KAFKA_TLS_DIR).
func KafkaTLSDir(t testing.TB) string {
	return env("STOCKFLOW_TEST_KAFKA_TLS_DIR", filepath.Join(moduleRoot(t), ".stack", "kafka-tls"))
}

// KafkaTLSFile returns the path of one of KafkaTLSDir's files, failing the
// test when it is missing.
func KafkaTLSFile(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(KafkaTLSDir(t), name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: make the Kafka test certificates with `deploy/local/kafka.sh start` (or `make stack-up`)", err)
	}
	return p
}

// KafkaSASLPassword is the password of SASL user stockflow on the local
// broker (PLAIN and SCRAM).
func KafkaSASLPassword(t testing.TB) string {
	t.Helper()
	pw, err := os.ReadFile(KafkaTLSFile(t, "password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(pw))
}

// KafkaSASL points k at the local broker's SASL_SSL listener
// ($STOCKFLOW_TEST_KAFKA_SASL_SSL, comma-separated, started by
// deploy/local/kafka.sh, or the cluster's by cluster.sh), its
// private CA, and mechanism: user stockflow and its password for plain and
// scram-*, and for oauthbearer a token file of the test's own holding an
// unsigned token for stockflow, valid for an hour (see UnsignedJWT). It
// keeps k's groups and client id.
func KafkaSASL(t testing.TB, k *config.Kafka, mechanism string) {
	t.Helper()
	addrs := strings.Split(env("STOCKFLOW_TEST_KAFKA_SASL_SSL", "127.0.0.1:9094"), ",")
	kafkaListener(t, "SASL_SSL", addrs[0])
	k.Brokers = addrs
	k.TLSCA = KafkaTLSFile(t, "ca.crt")
	k.SASLMechanism = mechanism
	if mechanism == config.SASLOAuthBearer {
		k.SASLTokenFile = filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(k.SASLTokenFile, []byte(UnsignedJWT("stockflow", time.Now().Add(time.Hour))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	k.SASLUsername = "stockflow"
	k.SASLPassword = KafkaSASLPassword(t)
}

// KafkaMTLS points k at the local broker's SSL listener that requires a
// client certificate ($STOCKFLOW_TEST_KAFKA_MTLS), with its private CA and
// the client certificate it trusts.
func KafkaMTLS(t testing.TB, k *config.Kafka) {
	t.Helper()
	addr := env("STOCKFLOW_TEST_KAFKA_MTLS", "127.0.0.1:9095")
	kafkaListener(t, "SSL with client certificates", addr)
	k.Brokers = []string{addr}
	k.TLSCA = KafkaTLSFile(t, "ca.crt")
	k.TLSCert = KafkaTLSFile(t, "client.crt")
	k.TLSKey = KafkaTLSFile(t, "client.key")
}

func kafkaListener(t testing.TB, what, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("Kafka's %s listener is not reachable at %s (%v): restart the broker with `deploy/local/kafka.sh stop; deploy/local/kafka.sh start` to add it", what, addr, err)
	}
	_ = conn.Close() // only dialled to see that the listener answers
}

// UnsignedJWT is an unsecured JWT (alg none) for subject sub expiring at
// exp, which the local broker's OAUTHBEARER validation accepts.
func UnsignedJWT(sub string, exp time.Time) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none"}) + "." +
		enc(map[string]any{"sub": sub, "iat": time.Now().Add(-time.Minute).Unix(), "exp": exp.Unix()}) + "."
}
