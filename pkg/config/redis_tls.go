package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
)

// Configured reports whether a Redis is given: an address, or cluster seeds.
func (r Redis) Configured() bool { return r.Addr != "" || len(r.ClusterAddrs) > 0 }

// Cluster reports whether Redis is a Redis Cluster.
func (r Redis) Cluster() bool { return len(r.ClusterAddrs) > 0 }

// UsesTLS reports whether Redis is reached over TLS: -redis-tls, or any of
// the TLS settings, which would mean nothing without it.
func (r Redis) UsesTLS() bool {
	return r.TLS || r.TLSCA != "" || r.TLSCert != "" || r.TLSKey != "" || r.TLSServerName != ""
}

// TLSConfig returns the client TLS configuration for Redis, or nil without
// TLS. Verification is never skipped: a private CA is given with TLSCA.
func (r Redis) TLSConfig() (*tls.Config, error) {
	if !r.UsesTLS() {
		return nil, nil
	}
	c, errs := r.buildTLS()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func (r Redis) tlsProblems() []error {
	_, errs := r.buildTLS()
	return errs
}

// buildTLS returns every problem found, not the first, so that Validate
// can report them all at once.
func (r Redis) buildTLS() (*tls.Config, []error) {
	s := tlsSettings{flag: "redis", ca: r.TLSCA, cert: r.TLSCert, key: r.TLSKey, serverName: r.TLSServerName}
	if s.serverName == "" {
		if host, _, err := net.SplitHostPort(r.Addr); err == nil {
			s.serverName = host
		}
	}
	return s.config()
}

func readPasswordFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return pw, nil
}

// String describes r with the password hidden, so that printing a
// configuration (%v, %+v) never shows it.
func (r Redis) String() string {
	pw := ""
	if r.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{Addr:%s ClusterAddrs:%v Username:%s Password:%s PasswordFile:%s DB:%d TLS:%t TLSCA:%s TLSCert:%s TLSKey:%s TLSServerName:%s KeyPrefix:%s}",
		r.Addr, r.ClusterAddrs, r.Username, pw, r.PasswordFile, r.DB, r.UsesTLS(), r.TLSCA, r.TLSCert, r.TLSKey, r.TLSServerName, r.KeyPrefix)
}

// LogValue is String for slog, which does not use String.
func (r Redis) LogValue() slog.Value { return slog.StringValue(r.String()) }
