package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// tlsSettings are the TLS settings Redis and Kafka share: the CAs the
// server's certificate must chain to, a client certificate with its key,
// and the name the server's certificate must carry. flag is what the
// settings' flags start with ("redis", "kafka"), to name them in messages.
type tlsSettings struct {
	flag                      string
	ca, cert, key, serverName string
}

// config builds the client TLS configuration, returning every problem
// found, not the first, so that Validate can report them all at once.
// Verification is never skipped: a private CA is given with ca.
func (s tlsSettings) config() (*tls.Config, []error) {
	var errs []error
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.serverName}
	if s.ca != "" {
		pool, err := loadCAs(s.ca)
		if err != nil {
			errs = append(errs, fmt.Errorf("ca %s: %w", s.ca, err))
		}
		c.RootCAs = pool
	}
	switch {
	case s.cert != "" && s.key != "":
		pair, err := tls.LoadX509KeyPair(s.cert, s.key)
		if err != nil {
			errs = append(errs, fmt.Errorf("client certificate %s with key %s: %w", s.cert, s.key, err))
		} else {
			c.Certificates = []tls.Certificate{pair}
		}
	case s.cert != "":
		errs = append(errs, fmt.Errorf("-%s-tls-cert is set without -%s-tls-key", s.flag, s.flag))
	case s.key != "":
		errs = append(errs, fmt.Errorf("-%s-tls-key is set without -%s-tls-cert", s.flag, s.flag))
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
