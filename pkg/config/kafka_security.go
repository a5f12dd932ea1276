package config

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// SASL mechanisms, as -kafka-sasl-mechanism takes them.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
	SASLOAuthBearer = "oauthbearer"
)

// TokenCommandTimeout bounds one run of -kafka-sasl-token-command.
const TokenCommandTimeout = 30 * time.Second

// UsesTLS reports whether the brokers are reached over TLS: -kafka-tls, or
// any of the TLS settings, which would mean nothing without it.
func (k Kafka) UsesTLS() bool {
	return k.TLS || k.TLSCA != "" || k.TLSCert != "" || k.TLSKey != "" || k.TLSServerName != ""
}

// TLSConfig returns the client TLS configuration for the brokers, or nil
// without TLS. Verification is never skipped: a private CA is given with
// TLSCA. Without TLSServerName, the client checks each broker's
// certificate against the host it dials.
func (k Kafka) TLSConfig() (*tls.Config, error) {
	if !k.UsesTLS() {
		return nil, nil
	}
	c, errs := k.tls().config()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (k Kafka) tls() tlsSettings {
	return tlsSettings{flag: "kafka", ca: k.TLSCA, cert: k.TLSCert, key: k.TLSKey, serverName: k.TLSServerName}
}

// Mechanism is SASLMechanism in the lower case the constants use; empty
// without SASL.
func (k Kafka) Mechanism() string { return strings.ToLower(strings.TrimSpace(k.SASLMechanism)) }

// Password returns the SASL password, reading SASLPasswordFile when the
// configuration was not made by Load (which reads it once, at start).
func (k Kafka) Password() (string, error) {
	if k.SASLPasswordFile == "" {
		return k.SASLPassword, nil
	}
	pw, err := readPasswordFile(k.SASLPasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka sasl password file: %w", err)
	}
	return pw, nil
}

// Token returns the oauthbearer token as it is now: the content of
// SASLTokenFile, or what SASLTokenCommand prints on its standard output,
// surrounding white space dropped. The command runs for at most
// TokenCommandTimeout.
func (k Kafka) Token(ctx context.Context) (string, error) {
	if k.SASLTokenFile != "" {
		tok, err := readTokenFile(k.SASLTokenFile)
		if err != nil {
			return "", fmt.Errorf("kafka sasl token file: %w", err)
		}
		return tok, nil
	}
	if k.SASLTokenCommand == "" {
		return "", errors.New("kafka sasl: oauthbearer without -kafka-sasl-token-file or -kafka-sasl-token-command")
	}
	ctx, cancel := context.WithTimeout(ctx, TokenCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", k.SASLTokenCommand)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		// The first line of what the command said is usually its reason;
		// its output is not shown, being the token when all goes well.
		why, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		if len(why) > 200 {
			why = why[:200] + "..."
		}
		if why != "" {
			err = fmt.Errorf("%w: %s", err, why)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no token within %v: %w", TokenCommandTimeout, err)
		}
		return "", fmt.Errorf("kafka sasl token command %s: %w", k.tokenCommandShown(), err)
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" {
		return "", fmt.Errorf("kafka sasl token command %s: printed no token", k.tokenCommandShown())
	}
	return tok, nil
}

func readTokenFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}

// tokenCommandShown is the token command as messages and String show it:
// its program only, as its arguments, and the variables it may set before
// it (CLIENT_SECRET=... fetch-token), may hold a client secret.
func (k Kafka) tokenCommandShown() string {
	f := strings.Fields(k.SASLTokenCommand)
	for len(f) > 0 && strings.Contains(f[0], "=") {
		f = f[1:]
	}
	switch {
	case len(f) == 0 && k.SASLTokenCommand != "":
		return "[redacted]"
	case len(f) == 0:
		return ""
	case len(f) == 1 && len(strings.Fields(k.SASLTokenCommand)) == 1:
		return f[0]
	}
	return f[0] + " [arguments redacted]"
}

// securityProblems lists every problem with the TLS and SASL settings,
// each naming the setting.
func (k Kafka) securityProblems() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if k.UsesTLS() {
		_, tlsErrs := k.tls().config()
		for _, err := range tlsErrs {
			bad("kafka tls: %v", err)
		}
	}
	mech := k.Mechanism()
	userSettings := []struct{ flag, value string }{
		{"-kafka-sasl-username", k.SASLUsername}, {"-kafka-sasl-password", k.SASLPassword}, {"-kafka-sasl-password-file", k.SASLPasswordFile},
	}
	tokenSettings := []struct{ flag, value string }{
		{"-kafka-sasl-token-file", k.SASLTokenFile}, {"-kafka-sasl-token-command", k.SASLTokenCommand},
	}
	switch mech {
	case "":
		for _, s := range append(userSettings, tokenSettings...) {
			if s.value != "" {
				bad("kafka sasl: %s is set without -kafka-sasl-mechanism", s.flag)
			}
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.SASLUsername == "" {
			bad("kafka sasl: %s needs -kafka-sasl-username", mech)
		}
		switch {
		case k.SASLPassword != "" && k.SASLPasswordFile != "":
			bad("kafka sasl password: set both -kafka-sasl-password and -kafka-sasl-password-file; choose one")
		case k.SASLPassword == "" && k.SASLPasswordFile == "":
			bad("kafka sasl: %s needs -kafka-sasl-password or -kafka-sasl-password-file", mech)
		case k.SASLPasswordFile != "":
			if _, err := readPasswordFile(k.SASLPasswordFile); err != nil {
				bad("kafka sasl password file: %v", err)
			}
		}
		for _, s := range tokenSettings {
			if s.value != "" {
				bad("kafka sasl: %s is for oauthbearer, not %s", s.flag, mech)
			}
		}
		if mech == SASLPlain && !k.UsesTLS() {
			bad("kafka sasl: plain would send the password in clear; set -kafka-tls (or use scram-sha-512)")
		}
	case SASLOAuthBearer:
		for _, s := range userSettings {
			if s.value != "" {
				bad("kafka sasl: %s is not used by oauthbearer (the token names the principal)", s.flag)
			}
		}
		switch {
		case k.SASLTokenFile != "" && k.SASLTokenCommand != "":
			bad("kafka sasl: set both -kafka-sasl-token-file and -kafka-sasl-token-command; oauthbearer takes one")
		case k.SASLTokenFile == "" && k.SASLTokenCommand == "":
			bad("kafka sasl: oauthbearer needs -kafka-sasl-token-file or -kafka-sasl-token-command")
		case k.SASLTokenFile != "":
			if _, err := readTokenFile(k.SASLTokenFile); err != nil {
				bad("kafka sasl token file: %v", err)
			}
		default:
			// The command runs at every authentication, not now; its
			// program must exist, though.
			prog := strings.Fields(k.SASLTokenCommand)[0]
			if !strings.Contains(prog, "=") {
				if _, err := exec.LookPath(prog); err != nil {
					bad("kafka sasl token command: %v", err)
				}
			}
		}
	default:
		bad("kafka sasl mechanism: %q is not one of %s, %s, %s, %s", k.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512, SASLOAuthBearer)
	}
	return errs
}

// String describes k with the SASL password hidden, so that printing a
// configuration (%v, %+v) never shows it.
func (k Kafka) String() string {
	pw := ""
	if k.SASLPassword != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{Brokers:%v ClientID:%s NormalizerGroup:%s FolderGroup:%s ReconcilerGroup:%s Partitions:%d Replication:%d CreateTopics:%t SessionTimeout:%v "+
		"TLS:%t TLSCA:%s TLSCert:%s TLSKey:%s TLSServerName:%s SASLMechanism:%s SASLUsername:%s SASLPassword:%s SASLPasswordFile:%s SASLTokenFile:%s SASLTokenCommand:%s}",
		k.Brokers, k.ClientID, k.NormalizerGroup, k.FolderGroup, k.ReconcilerGroup, k.Partitions, k.Replication, k.CreateTopics, k.SessionTimeout,
		k.UsesTLS(), k.TLSCA, k.TLSCert, k.TLSKey, k.TLSServerName, k.SASLMechanism, k.SASLUsername, pw, k.SASLPasswordFile, k.SASLTokenFile, k.tokenCommandShown())
}

// LogValue is String for slog, which does not use String.
func (k Kafka) LogValue() slog.Value { return slog.StringValue(k.String()) }
