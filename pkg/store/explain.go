package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// ConnError is a failure to reach or use Redis, told in words an operator
// can act on. It never holds the password.
type ConnError struct {
	// Misconfigured is true when retrying cannot help: the credentials,
	// the permissions or the TLS settings are wrong.
	Misconfigured bool
	msg           string
	err           error
}

func (e *ConnError) Error() string { return e.msg }
func (e *ConnError) Unwrap() error { return e.err }

// Explain turns a Redis client error into a ConnError naming the address
// and user of opts (nil: unknown). A nil err stays nil.
func Explain(opts *redis.Options, err error) error {
	if err == nil {
		return nil
	}
	addr, user, password := "redis", "default", ""
	if opts != nil {
		addr, password = opts.Addr, opts.Password
		if opts.Username != "" {
			user = opts.Username
		}
	}
	e := &ConnError{err: err}
	text := err.Error()
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		verify    *tls.CertificateVerificationError
		opErr     *net.OpError
	)
	switch {
	case strings.HasPrefix(text, "WRONGPASS"):
		e.Misconfigured = true
		e.msg = "redis: authentication failed for user " + user + " at " + addr + " (WRONGPASS): wrong password, or the user does not exist or is disabled"
	case strings.HasPrefix(text, "NOAUTH"):
		e.Misconfigured = true
		e.msg = "redis: " + addr + " requires authentication (NOAUTH): set -redis-username and -redis-password-file"
	case strings.HasPrefix(text, "NOPERM"):
		e.Misconfigured = true
		e.msg = "redis: user " + user + " at " + addr + " lacks a permission Stockflow needs: " + text
	case errors.As(err, &unknownCA):
		e.Misconfigured = true
		e.msg = "redis: TLS handshake with " + addr + " failed: certificate signed by unknown authority (set -redis-tls-ca to the CA that signed the server's certificate)"
	case errors.As(err, &badHost):
		e.Misconfigured = true
		e.msg = "redis: TLS handshake with " + addr + " failed: " + badHost.Error() + " (set -redis-tls-server-name to a name the certificate carries)"
	case errors.As(err, &invalid), errors.As(err, &verify):
		e.Misconfigured = true
		e.msg = "redis: TLS handshake with " + addr + " failed: " + text
	case errors.As(err, &header):
		e.Misconfigured = true
		e.msg = "redis: TLS handshake with " + addr + " failed: the server does not speak TLS on this port"
	case errors.As(err, &alert), strings.Contains(text, "remote error: tls: "):
		// The server refused the handshake, most often for a client
		// certificate it wanted and did not get or does not trust. Under
		// TLS 1.3 that arrives after the handshake as a "remote error"
		// whose alert type crypto/tls does not export, hence the text.
		e.Misconfigured = true
		e.msg = "redis: TLS handshake with " + addr + " failed: the server said " + strings.TrimPrefix(text, "remote error: ") + " (check -redis-tls-cert and -redis-tls-key)"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.msg = "redis: connection refused at " + addr
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &opErr) && opErr.Timeout():
		e.msg = "redis: no answer from " + addr + " in time: " + text
	default:
		e.msg = "redis: " + addr + ": " + text
	}
	if password != "" {
		// go-redis does not put the password in its errors; this keeps it
		// so should one ever do.
		e.msg = strings.ReplaceAll(e.msg, password, "[redacted]")
	}
	return e
}

// Misconfigured reports whether err is a Redis failure that retrying cannot
// cure: wrong credentials, permissions or TLS settings.
func Misconfigured(err error) bool {
	var e *ConnError
	return errors.As(err, &e) && e.Misconfigured
}
