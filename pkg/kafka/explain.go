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
	e := &ConnError{err: err}
	text := err.Error()
	// The first explanation that matches wins, so the order matters: the
	// network checks, the least specific, come last.
	if msg, misconfigured, ok := explainSettings(cfg, at, text, err); ok {
		e.msg, e.Misconfigured = msg, misconfigured
	} else if msg, ok := explainCertificate(cfg, at, text, err); ok {
		e.msg, e.Misconfigured = msg, true
	} else if msg, ok := explainMismatch(cfg, at, text, err); ok {
		e.msg, e.Misconfigured = msg, true
	} else {
		e.msg = explainNetwork(at, text, err)
	}
	if pw, _ := cfg.Password(); pw != "" {
		// Neither franz-go nor the broker put the password in errors;
		// this keeps it so should one ever do.
		e.msg = strings.ReplaceAll(e.msg, pw, "[redacted]")
	}
	return e
}

// explainSettings explains a setting gone bad since start, a token that
// could not be had, and the SASL handshake failures. It reports whether err
// was one of those, and whether retrying cannot help.
func explainSettings(cfg config.Kafka, at, text string, err error) (msg string, misconfigured, ok bool) {
	mech := strings.ToUpper(cfg.Mechanism())
	var (
		settings *settingsError
		token    *tokenError
	)
	switch {
	case errors.As(err, &settings):
		return settings.Error() + " (it was usable at start: has it changed since?)", true, true
	case errors.As(err, &token):
		return "kafka: no oauthbearer token for " + at + ": " + token.Error(), false, true
	case errors.Is(err, kerr.SaslAuthenticationFailed):
		msg = "kafka: SASL authentication failed for " + principal(cfg) + " with mechanism " + mech + " at " + at
		if said := brokerSaid(text, kerr.SaslAuthenticationFailed); said != "" {
			msg += ": the broker said " + said
		}
		return msg, true, true
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return "kafka: the listener at " + at + " does not enable SASL mechanism " + mech + " (check -kafka-sasl-mechanism against the listener's sasl.enabled.mechanisms)", true, true
	case errors.Is(err, kerr.IllegalSaslState):
		return "kafka: the listener at " + at + " does not use SASL (" + mech + " was tried): use the port of its SASL listener, or leave -kafka-sasl-mechanism empty", true, true
	}
	return "", false, false
}

// explainCertificate explains a broker certificate this client refused,
// and reports whether err was one.
func explainCertificate(cfg config.Kafka, at, text string, err error) (string, bool) {
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownCA):
		if cfg.TLSCA != "" {
			return "kafka: TLS handshake with " + at + " failed: the broker's certificate is signed by an unknown authority, not by a CA in " + cfg.TLSCA + " (set -kafka-tls-ca to the CA that signed it)", true
		}
		return "kafka: TLS handshake with " + at + " failed: the broker's certificate is signed by an unknown authority, none of the system's roots (set -kafka-tls-ca to the CA that signed it)", true
	case errors.As(err, &badHost):
		return "kafka: TLS handshake with " + at + " failed: " + badHost.Error() + " (set -kafka-tls-server-name to a name the certificate carries)", true
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		when := "has expired"
		if !strings.Contains(invalid.Detail, " is after ") {
			when = "is not valid yet"
		}
		return "kafka: TLS handshake with " + at + " failed: the broker's certificate " + when + ": " + invalid.Detail + " (renew the broker's certificate, or check this machine's clock)", true
	case errors.As(err, &invalid), errors.As(err, &verify):
		return "kafka: TLS handshake with " + at + " failed: the broker's certificate was refused: " + text, true
	}
	return "", false
}

// explainMismatch explains a handshake the broker refused or a first
// exchange it could not make sense of: the two ends disagree on TLS, on
// SASL, or on the client certificate. It reports whether err was one.
func explainMismatch(cfg config.Kafka, at, text string, err error) (string, bool) {
	var (
		header   tls.RecordHeaderError
		firstEOF *kgo.ErrFirstReadEOF
	)
	switch {
	case errors.As(err, &header):
		return "kafka: TLS to a plaintext port: the broker at " + at + " does not speak TLS there (use the port of its TLS listener, or leave TLS off)", true
	case strings.Contains(text, "remote error: tls: "):
		// The broker refused the handshake, most often for a client
		// certificate it wanted and did not get, or does not trust. Under
		// TLS 1.3 that arrives after the handshake as a "remote error"
		// whose alert type crypto/tls does not export, hence the text.
		alert := text[strings.Index(text, "remote error: tls: ")+len("remote error: "):]
		return "kafka: TLS handshake with " + at + " failed: the broker refused it (" + alert + "): " + clientCertProblem(cfg), true
	case strings.Contains(text, "plaintext connection speaking to a tls endpoint"):
		// franz-go read a TLS alert where a Kafka response should be.
		return plaintextToTLS(at), true
	case errors.As(err, &firstEOF):
		// The broker hung up on the first exchange: the two ends do not
		// speak the same protocol on this port.
		switch {
		case cfg.UsesTLS():
			return "kafka: TLS to a plaintext port: the broker at " + at + " closed the connection during the TLS handshake (use the port of its TLS listener, or leave TLS off)", true
		case strings.Contains(text, "requires TLS"):
			return plaintextToTLS(at), true
		default:
			return "kafka: the broker at " + at + " closed the connection after the first request: the listener requires SASL or TLS (set -kafka-sasl-mechanism, -kafka-tls)", true
		}
	}
	return "", false
}

// explainNetwork explains the rest: brokers not there, not found, out of
// reach or too slow, all of which a retry may cure.
func explainNetwork(at, text string, err error) string {
	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "kafka: connection refused at " + at + " (no broker listening there, or not yet)"
	case errors.As(err, &dnsErr):
		return "kafka: cannot resolve " + dnsErr.Name + " (a broker of " + at + "): " + dnsErr.Err
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "kafka: " + at + " is unreachable from here: " + text
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &opErr) && opErr.Timeout():
		return "kafka: no answer from " + at + " in time: " + text
	}
	return "kafka: " + at + ": " + text
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
