package config

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKafkaSecuritySettingsLoad(t *testing.T) {
	ca, cert, key := tlsFiles(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("kafka s3cret\n"), 0o600)
	cfg, err := NewLoader("serve", io.Discard).Load(stores(
		"-kafka-sasl-mechanism=SCRAM-SHA-512", "-kafka-sasl-username=stockflow", "-kafka-sasl-password-file="+pwFile,
		"-kafka-tls-cert="+cert, "-kafka-tls-key="+key),
		env(map[string]string{"STOCKFLOW_KAFKA_TLS_CA": ca}))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka
	if k.SASLUsername != "stockflow" || k.SASLPassword != "kafka s3cret" || k.SASLPasswordFile != "" {
		t.Fatalf("user %q, password read %v, file %q", k.SASLUsername, k.SASLPassword == "kafka s3cret", k.SASLPasswordFile)
	}
	if k.Mechanism() != SASLScramSHA512 {
		t.Fatalf("mechanism %q, want %q whatever its case", k.Mechanism(), SASLScramSHA512)
	}
	if k.TLS || !k.UsesTLS() {
		t.Fatal("the TLS files must imply TLS without -kafka-tls")
	}
	tc, err := k.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	// No server name: franz-go checks each broker against the host it dials.
	if tc.ServerName != "" || tc.MinVersion < 0x0303 || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.InsecureSkipVerify {
		t.Fatalf("tls config: name %q, min %x, roots %v, certs %d, skip %v", tc.ServerName, tc.MinVersion, tc.RootCAs != nil, len(tc.Certificates), tc.InsecureSkipVerify)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the loaded configuration must validate again: %v", err)
	}

	cfg, err = NewLoader("serve", io.Discard).Load(stores("-kafka-tls-server-name=kafka.example"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if tc, _ := cfg.Kafka.TLSConfig(); tc == nil || tc.ServerName != "kafka.example" || tc.RootCAs != nil {
		t.Fatalf("server name alone: %+v", tc)
	}
	if tc, _ := (Kafka{Brokers: []string{"k:1"}}).TLSConfig(); tc != nil {
		t.Fatal("no TLS setting: no TLS")
	}
}

// The settings read from a file under the names the README gives them.
func TestKafkaSecuritySettingsFromYAML(t *testing.T) {
	ca, _, _ := tlsFiles(t)
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("eyJhbGciOiJub25lIn0.e30.\n"), 0o600)
	file := filepath.Join(dir, "stockflow.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`
kafka:
  brokers: [b-1.kafka.example:9096]
  tls: true
  tls_ca: %s
  tls_server_name: kafka.example
  sasl_mechanism: oauthbearer
  sasl_token_file: %s
redis:
  addr: r:6379
`, ca, tok)), 0o600)
	cfg, err := NewLoader("serve", io.Discard).Load([]string{"-config", file}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka
	if !k.TLS || k.TLSCA != ca || k.TLSServerName != "kafka.example" || k.Mechanism() != SASLOAuthBearer || k.SASLTokenFile != tok {
		t.Fatalf("loaded %v", k)
	}
	os.WriteFile(file, []byte("kafka:\n  brokers: [k:1]\n  sasl_mechanism: scram-sha-256\n  sasl_username: u\n  sasl_password: p\n  sasl_token_command: get-token\nredis:\n  addr: r:1\n"), 0o600)
	_, err = NewLoader("serve", io.Discard).Load([]string{"-config", file}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "kafka sasl: -kafka-sasl-token-command is for oauthbearer, not scram-sha-256") {
		t.Fatalf("got %v", err)
	}
}

// Every problem with the Kafka security settings is reported, each naming
// the setting.
func TestKafkaSecuritySettingsValidate(t *testing.T) {
	ca, cert, _ := tlsFiles(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("pw\n"), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("a.b.c"), 0o600)

	// All at once.
	_, err := NewLoader("serve", io.Discard).Load(stores(
		"-kafka-sasl-mechanism=scram-sha-256", "-kafka-sasl-password=x", "-kafka-sasl-password-file="+empty,
		"-kafka-tls-ca="+garbage, "-kafka-tls-cert="+cert, "-kafka-tls-key="+ca), env(nil))
	for _, w := range []string{
		"kafka sasl: scram-sha-256 needs -kafka-sasl-username",
		"kafka sasl password: set both -kafka-sasl-password and -kafka-sasl-password-file; choose one",
		"kafka tls: ca " + garbage + ": no PEM certificate in the file",
		"kafka tls: client certificate " + cert + " with key " + ca + ":",
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\nlacks %q", err, w)
		}
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown mechanism", []string{"-kafka-tls=true", "-kafka-sasl-mechanism=gssapi"},
			`kafka sasl mechanism: "gssapi" is not one of plain, scram-sha-256, scram-sha-512, oauthbearer`},
		{"no password", []string{"-kafka-sasl-mechanism=scram-sha-512", "-kafka-sasl-username=u"},
			"kafka sasl: scram-sha-512 needs -kafka-sasl-password or -kafka-sasl-password-file"},
		{"empty password file", []string{"-kafka-sasl-mechanism=scram-sha-512", "-kafka-sasl-username=u", "-kafka-sasl-password-file=" + empty},
			"kafka sasl password file: " + empty + " is empty"},
		{"missing password file", []string{"-kafka-sasl-mechanism=scram-sha-512", "-kafka-sasl-username=u", "-kafka-sasl-password-file=" + filepath.Join(dir, "missing")},
			"kafka sasl password file: open " + filepath.Join(dir, "missing")},
		{"plain without tls", []string{"-kafka-sasl-mechanism=plain", "-kafka-sasl-username=u", "-kafka-sasl-password-file=" + pw},
			"kafka sasl: plain would send the password in clear; set -kafka-tls"},
		{"user without mechanism", []string{"-kafka-sasl-username=u"},
			"kafka sasl: -kafka-sasl-username is set without -kafka-sasl-mechanism"},
		{"token without mechanism", []string{"-kafka-sasl-token-file=" + tok},
			"kafka sasl: -kafka-sasl-token-file is set without -kafka-sasl-mechanism"},
		{"token with scram", []string{"-kafka-sasl-mechanism=scram-sha-256", "-kafka-sasl-username=u", "-kafka-sasl-password=p", "-kafka-sasl-token-file=" + tok},
			"kafka sasl: -kafka-sasl-token-file is for oauthbearer, not scram-sha-256"},
		{"oauthbearer without token", []string{"-kafka-sasl-mechanism=oauthbearer"},
			"kafka sasl: oauthbearer needs -kafka-sasl-token-file or -kafka-sasl-token-command"},
		{"oauthbearer with both", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-file=" + tok, "-kafka-sasl-token-command=cat " + tok},
			"kafka sasl: set both -kafka-sasl-token-file and -kafka-sasl-token-command; oauthbearer takes one"},
		{"oauthbearer with a user", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-file=" + tok, "-kafka-sasl-username=u"},
			"kafka sasl: -kafka-sasl-username is not used by oauthbearer"},
		{"empty token file", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-file=" + empty},
			"kafka sasl token file: " + empty + " is empty"},
		{"token command not found", []string{"-kafka-sasl-mechanism=oauthbearer", "-kafka-sasl-token-command=no-such-token-tool --audience kafka"},
			`kafka sasl token command: exec: "no-such-token-tool": executable file not found`},
		{"cert without key", []string{"-kafka-tls-cert=" + cert}, "kafka tls: -kafka-tls-cert is set without -kafka-tls-key"},
		{"key without cert", []string{"-kafka-tls-key=" + cert}, "kafka tls: -kafka-tls-key is set without -kafka-tls-cert"},
		{"missing ca", []string{"-kafka-tls-ca=" + filepath.Join(dir, "missing.pem")}, "kafka tls: ca " + filepath.Join(dir, "missing.pem") + ": open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLoader("serve", io.Discard).Load(stores(tc.args...), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant %q", err, tc.want)
			}
		})
	}

	// Good combinations load.
	for _, args := range [][]string{
		{"-kafka-sasl-mechanism=plain", "-kafka-tls=true", "-kafka-sasl-username=u", "-kafka-sasl-password-file=" + pw},
		{"-kafka-sasl-mechanism=scram-sha-256", "-kafka-sasl-username=u", "-kafka-sasl-password=p"},
		{"-kafka-sasl-mechanism=oauthbearer", "-kafka-tls-ca=" + ca, "-kafka-sasl-token-file=" + tok},
		{"-kafka-sasl-mechanism=OAUTHBEARER", "-kafka-tls=true", "-kafka-sasl-token-command=cat " + tok},
	} {
		if _, err := NewLoader("serve", io.Discard).Load(stores(args...), env(nil)); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}

	// The embedded Kafka has neither TLS nor SASL.
	_, err = NewLoader("serve", io.Discard).Load([]string{"-kafka-tls-ca=" + ca}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "the embedded Kafka has neither") {
		t.Errorf("embedded with TLS: %v", err)
	}
}

// Printing the configuration never shows the SASL password, nor the
// arguments of the token command, which may hold a client secret.
func TestKafkaSecretsRedacted(t *testing.T) {
	cfg := Default()
	cfg.Kafka.Brokers = []string{"k:9092"}
	cfg.Kafka.SASLMechanism, cfg.Kafka.SASLUsername, cfg.Kafka.SASLPassword = "scram-sha-512", "stockflow", "hunter2-kafka"
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%v", cfg.Kafka), cfg.Kafka.LogValue().String()} {
		if strings.Contains(s, "hunter2-kafka") || !strings.Contains(s, "SASLPassword:[redacted]") || !strings.Contains(s, "SASLUsername:stockflow") {
			t.Fatalf("printed %s", s)
		}
	}
	cfg.Kafka.SASLMechanism, cfg.Kafka.SASLUsername, cfg.Kafka.SASLPassword = "oauthbearer", "", ""
	cfg.Kafka.SASLTokenCommand = "fetch-token --client-secret sekret-value"
	s := fmt.Sprintf("%+v", cfg)
	if strings.Contains(s, "sekret-value") || !strings.Contains(s, "SASLTokenCommand:fetch-token [arguments redacted]") {
		t.Fatalf("printed %s", s)
	}
}

// The token is read again at every call: a rotated file or a command's
// new answer is used at the next authentication.
func TestKafkaTokenIsReadEveryTime(t *testing.T) {
	ctx := context.Background()
	tok := filepath.Join(t.TempDir(), "token")
	k := Kafka{SASLMechanism: SASLOAuthBearer, SASLTokenFile: tok}
	for _, want := range []string{"first.token.value", "second.token.value"} {
		os.WriteFile(tok, []byte(want+"\n"), 0o600)
		if got, err := k.Token(ctx); err != nil || got != want {
			t.Fatalf("token file: %q, %v; want %q", got, err, want)
		}
	}
	os.Remove(tok)
	if _, err := k.Token(ctx); err == nil || !strings.Contains(err.Error(), "kafka sasl token file: open "+tok) {
		t.Fatalf("token file gone: %v", err)
	}

	k = Kafka{SASLMechanism: SASLOAuthBearer, SASLTokenCommand: "cat " + tok}
	for _, want := range []string{"third.token.value", "fourth.token.value"} {
		os.WriteFile(tok, []byte(want+"\n"), 0o600)
		if got, err := k.Token(ctx); err != nil || got != want {
			t.Fatalf("token command: %q, %v; want %q", got, err, want)
		}
	}
	// A failing command is reported with the first line it wrote on its
	// standard error, never with what it wrote on its standard output.
	k.SASLTokenCommand = "echo partial-token-output; echo 'identity provider said no' >&2; echo more >&2; exit 3"
	_, err := k.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "exit status 3: identity provider said no") || strings.Contains(err.Error(), "partial-token-output") || strings.Contains(err.Error(), "more") {
		t.Fatalf("failing command: %v", err)
	}
	if !strings.Contains(err.Error(), "kafka sasl token command echo [arguments redacted]") {
		t.Fatalf("failing command named as %v", err)
	}
	k.SASLTokenCommand = "true"
	if _, err := k.Token(ctx); err == nil || !strings.Contains(err.Error(), "printed no token") {
		t.Fatalf("silent command: %v", err)
	}
}

func TestTokenCommandShownHidesVariables(t *testing.T) {
	for cmd, want := range map[string]string{
		"fetch-token":                             "fetch-token",
		"fetch-token --secret s3cr3t":             "fetch-token [arguments redacted]",
		"CLIENT_SECRET=s3cr3t fetch-token":        "fetch-token [arguments redacted]",
		"A=1 CLIENT_SECRET=s3cr3t fetch-token -v": "fetch-token [arguments redacted]",
		"CLIENT_SECRET=s3cr3t":                    "[redacted]",
	} {
		if got := (Kafka{SASLTokenCommand: cmd}).tokenCommandShown(); got != want {
			t.Errorf("%q shown as %q, want %q", cmd, got, want)
		}
	}
}
