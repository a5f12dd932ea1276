package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
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
	var errs []error
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLSServerName}
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(r.Addr); err == nil {
			c.ServerName = host
		}
	}
	if r.TLSCA != "" {
		pool, err := loadCAs(r.TLSCA)
		if err != nil {
			errs = append(errs, fmt.Errorf("ca %s: %w", r.TLSCA, err))
		}
		c.RootCAs = pool
	}
	switch {
	case r.TLSCert != "" && r.TLSKey != "":
		pair, err := tls.LoadX509KeyPair(r.TLSCert, r.TLSKey)
		if err != nil {
			errs = append(errs, fmt.Errorf("client certificate %s with key %s: %w", r.TLSCert, r.TLSKey, err))
		} else {
			c.Certificates = []tls.Certificate{pair}
		}
	case r.TLSCert != "":
		errs = append(errs, errors.New("-redis-tls-cert is set without -redis-tls-key"))
	case r.TLSKey != "":
		errs = append(errs, errors.New("-redis-tls-key is set without -redis-tls-cert"))
	}
	return c, errs
}

// loadCAs reads a PEM bundle, refusing one with no certificate or with a
// block that does not parse, rather than trusting less than was meant.
func loadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
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
