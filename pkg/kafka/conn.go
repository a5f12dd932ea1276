package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/stockflow/stockflow/pkg/config"
)

// MaxPartitionBytes is the most one fetch of a consumer brings from one
// partition when the fetch size is bounded (config.Kafka.FetchMaxBytes).
const MaxPartitionBytes = 1 << 20

// Conn are the options that reach cfg's brokers as cfg's principal: the
// seed brokers, the client id, TLS and SASL. Every client Stockflow makes
// starts from them, whatever else it sets.
//
// With cfg.FetchMaxBytes set, a fetch takes at most MaxPartitionBytes of
// it from one partition.
func Conn(cfg config.Kafka) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	tc, err := cfg.TLSConfig()
	if err != nil {
		// Validated at load, so the files changed since. Fail every dial
		// with the reason rather than connect without TLS.
		err = &settingsError{fmt.Errorf("kafka tls: %w", err)}
		return append(opts, kgo.Dialer(func(context.Context, string, string) (net.Conn, error) { return nil, err }))
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := mechanism(cfg); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	if n := cfg.FetchMaxBytes; n > 0 {
		// What a consumer buffers from a backlog; a batch larger than
		// these still comes, alone, so nothing is ever stuck.
		opts = append(opts, kgo.FetchMaxBytes(int32(n)), kgo.FetchMaxPartitionBytes(int32(min(n, MaxPartitionBytes))))
	}
	return opts
}

// mechanism is the SASL mechanism of cfg, nil without SASL. Credentials
// are fetched at every authentication (each new connection, and each
// re-authentication the broker asks for), so that a rotated oauthbearer
// token is picked up without a restart.
func mechanism(cfg config.Kafka) sasl.Mechanism {
	userPass := func() (string, string, error) {
		pw, err := cfg.Password()
		if err != nil {
			return "", "", &settingsError{err}
		}
		return cfg.SASLUsername, pw, nil
	}
	switch cfg.Mechanism() {
	case config.SASLPlain:
		return plain.Plain(func(context.Context) (plain.Auth, error) {
			u, p, err := userPass()
			return plain.Auth{User: u, Pass: p}, err
		})
	case config.SASLScramSHA256, config.SASLScramSHA512:
		fn := func(context.Context) (scram.Auth, error) {
			u, p, err := userPass()
			return scram.Auth{User: u, Pass: p}, err
		}
		if cfg.Mechanism() == config.SASLScramSHA256 {
			return scram.Sha256(fn)
		}
		return scram.Sha512(fn)
	case config.SASLOAuthBearer:
		return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
			tok, err := cfg.Token(ctx)
			if err != nil {
				return oauth.Auth{}, &tokenError{err}
			}
			return oauth.Auth{Token: tok}, nil
		})
	}
	return nil
}

// ConnOf returns the connection options cl was made with (seed brokers,
// client id, TLS or dialer, SASL), for another client to the same cluster
// as the same principal.
func ConnOf(cl *kgo.Client) []kgo.Opt {
	var opts []kgo.Opt
	if seeds, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok {
		opts = append(opts, kgo.SeedBrokers(seeds...))
	}
	if id := cl.OptValues(kgo.ClientID); len(id) == 2 && id[1] == true {
		opts = append(opts, kgo.ClientID(id[0].(string)))
	}
	// A client given a TLS configuration has its dialer made from it;
	// the two options cannot be given together.
	if tc, ok := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); ok && tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	} else if dial, ok := cl.OptValue(kgo.Dialer).(func(context.Context, string, string) (net.Conn, error)); ok && dial != nil {
		opts = append(opts, kgo.Dialer(dial))
	}
	if ms, ok := cl.OptValue(kgo.SASL).([]sasl.Mechanism); ok && len(ms) > 0 {
		opts = append(opts, kgo.SASL(ms...))
	}
	return opts
}
