package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
)

// ConnError is a failure to reach or use the brokers, told in words an
// operator can act on. It never holds the SASL password or token.
type ConnError struct {
	// Misconfigured is true when retrying cannot help: the credentials or
	// the TLS settings are wrong, or the port speaks another protocol.
	Misconfigured bool
	msg           string
	err           error
}

func (e *ConnError) Error() string { return e.msg }
func (e *ConnError) Unwrap() error { return e.err }

// Misconfigured reports whether err is a Kafka connection failure that
// retrying cannot cure: wrong credentials or TLS settings.
func Misconfigured(err error) bool {
	var e *ConnError
	return errors.As(err, &e) && e.Misconfigured
}

// settingsError is a setting that could not be used when a connection
// needed it: a TLS or password file gone or changed since start.
type settingsError struct{ err error }

func (e *settingsError) Error() string { return e.err.Error() }
func (e *settingsError) Unwrap() error { return e.err }

// tokenError is a failure to get an oauthbearer token, which may heal (an
// identity provider down, a token file being replaced).
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// Explain turns a Kafka client error into a ConnError naming the brokers,
// and the user and mechanism or the files of cfg that are at fault. A nil
// err stays nil, and an explained one is returned as it is.
func Explain(cfg config.Kafka, err error) error {
	if err == nil {
		return nil
	}
	var done *ConnError
	if errors.As(err, &done) {
		return err
	}
	at := strings.Join(cfg.Brokers, ",")
	if at == "" {
		at = "the brokers"
	}
	mech := strings.ToUpper(cfg.Mechanism())
	e := &ConnError{err: err}
	text := err.Error()
	var (
		settings  *settingsError
		token     *tokenError
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		firstEOF  *kgo.ErrFirstReadEOF
		dnsErr    *net.DNSError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &settings):
		e.Misconfigured = true
		e.msg = settings.Error() + " (it was usable at start: has it changed since?)"
	case errors.As(err, &token):
		e.msg = "kafka: no oauthbearer token for " + at + ": " + token.Error()
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		e.Misconfigured = true
		e.msg = "kafka: SASL authentication failed for " + principal(cfg) + " with mechanism " + mech + " at " + at
		if said := brokerSaid(text, kerr.SaslAuthenticationFailed); said != "" {
			e.msg += ": the broker said " + said
		}
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		e.Misconfigured = true
		e.msg = "kafka: the listener at " + at + " does not enable SASL mechanism " + mech + " (check -kafka-sasl-mechanism against the listener's sasl.enabled.mechanisms)"
	case errors.Is(err, kerr.IllegalSaslState):
		e.Misconfigured = true
		e.msg = "kafka: the listener at " + at + " does not use SASL (" + mech + " was tried): use the port of its SASL listener, or leave -kafka-sasl-mechanism empty"
	case errors.As(err, &unknownCA):
		e.Misconfigured = true
		if cfg.TLSCA != "" {
			e.msg = "kafka: TLS handshake with " + at + " failed: the broker's certificate is signed by an unknown authority, not by a CA in " + cfg.TLSCA + " (set -kafka-tls-ca to the CA that signed it)"
		} else {
			e.msg = "kafka: TLS handshake with " + at + " failed: the broker's certificate is signed by an unknown authority, none of the system's roots (set -kafka-tls-ca to the CA that signed it)"
		}
	case errors.As(err, &badHost):
		e.Misconfigured = true
		e.msg = "kafka: TLS handshake with " + at + " failed: " + badHost.Error() + " (set -kafka-tls-server-name to a name the certificate carries)"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		e.Misconfigured = true
		when := "has expired"
		if !strings.Contains(invalid.Detail, " is after ") {
			when = "is not valid yet"
		}
		e.msg = "kafka: TLS handshake with " + at + " failed: the broker's certificate " + when + ": " + invalid.Detail + " (renew the broker's certificate, or check this machine's clock)"
	case errors.As(err, &invalid), errors.As(err, &verify):
		e.Misconfigured = true
		e.msg = "kafka: TLS handshake with " + at + " failed: the broker's certificate was refused: " + text
	case errors.As(err, &header):
		e.Misconfigured = true
		e.msg = "kafka: TLS to a plaintext port: the broker at " + at + " does not speak TLS there (use the port of its TLS listener, or leave TLS off)"
	case strings.Contains(text, "remote error: tls: "):
		// The broker refused the handshake, most often for a client
		// certificate it wanted and did not get, or does not trust. Under
		// TLS 1.3 that arrives after the handshake as a "remote error"
		// whose alert type crypto/tls does not export, hence the text.
		e.Misconfigured = true
		alert := text[strings.Index(text, "remote error: tls: ")+len("remote error: "):]
		e.msg = "kafka: TLS handshake with " + at + " failed: the broker refused it (" + alert + "): " + clientCertProblem(cfg)
	case strings.Contains(text, "plaintext connection speaking to a tls endpoint"):
		// franz-go read a TLS alert where a Kafka response should be.
		e.Misconfigured = true
		e.msg = plaintextToTLS(at)
	case errors.As(err, &firstEOF):
		// The broker hung up on the first exchange: the two ends do not
		// speak the same protocol on this port.
		e.Misconfigured = true
		switch {
		case cfg.UsesTLS():
			e.msg = "kafka: TLS to a plaintext port: the broker at " + at + " closed the connection during the TLS handshake (use the port of its TLS listener, or leave TLS off)"
		case strings.Contains(text, "requires TLS"):
			e.msg = plaintextToTLS(at)
		default:
			e.msg = "kafka: the broker at " + at + " closed the connection after the first request: the listener requires SASL or TLS (set -kafka-sasl-mechanism, -kafka-tls)"
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		e.msg = "kafka: connection refused at " + at + " (no broker listening there, or not yet)"
	case errors.As(err, &dnsErr):
		e.msg = "kafka: cannot resolve " + dnsErr.Name + " (a broker of " + at + "): " + dnsErr.Err
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		e.msg = "kafka: " + at + " is unreachable from here: " + text
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &opErr) && opErr.Timeout():
		e.msg = "kafka: no answer from " + at + " in time: " + text
	default:
		e.msg = "kafka: " + at + ": " + text
	}
	if pw, _ := cfg.Password(); pw != "" {
		// Neither franz-go nor the broker put the password in errors;
		// this keeps it so should one ever do.
		e.msg = strings.ReplaceAll(e.msg, pw, "[redacted]")
	}
	return e
}

func plaintextToTLS(at string) string {
	return "kafka: plaintext to a TLS port: the broker at " + at + " expects TLS (set -kafka-tls, with -kafka-tls-ca for a private CA, or use the port of its plaintext listener)"
}

// principal names who authenticates: the user, or where the token is from.
func principal(cfg config.Kafka) string {
	switch {
	case cfg.Mechanism() != config.SASLOAuthBearer:
		return "user " + cfg.SASLUsername
	case cfg.SASLTokenFile != "":
		return "the token in " + cfg.SASLTokenFile
	default:
		return "the token of -kafka-sasl-token-command"
	}
}

// brokerSaid is the broker's own message that franz-go appends to the
// error code, if any.
func brokerSaid(text string, code *kerr.Error) string {
	prefix := code.Error() + ": "
	i := strings.Index(text, prefix)
	if i < 0 {
		return ""
	}
	return text[i+len(prefix):]
}

// clientCertProblem says what is likely wrong with the client certificate
// when the broker refused the handshake.
func clientCertProblem(cfg config.Kafka) string {
	if cfg.TLSCert == "" {
		return "the broker probably requires a client certificate (set -kafka-tls-cert and -kafka-tls-key)"
	}
	pair, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err == nil && pair.Leaf != nil {
		now := time.Now()
		switch {
		case now.After(pair.Leaf.NotAfter):
			return fmt.Sprintf("the client certificate %s expired at %s", cfg.TLSCert, pair.Leaf.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(pair.Leaf.NotBefore):
			return fmt.Sprintf("the client certificate %s is not valid before %s", cfg.TLSCert, pair.Leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return "the broker refused the client certificate " + cfg.TLSCert + " (is it signed by a CA the broker trusts, for client authentication?)"
}
