package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNormalizerTxnTimeout(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stockflow.yaml")
	if err := os.WriteFile(file, []byte("normalizer_txn_timeout: 40s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
		bad  bool
	}{
		{name: "default", want: 10 * time.Second},
		{name: "file", args: []string{"-config", file}, want: 40 * time.Second},
		{name: "env over file", args: []string{"-config", file}, env: map[string]string{"STOCKFLOW_NORMALIZER_TXN_TIMEOUT": "20s"}, want: 20 * time.Second},
		{name: "flag over env", args: []string{"-normalizer-txn-timeout", "5s"}, env: map[string]string{"STOCKFLOW_NORMALIZER_TXN_TIMEOUT": "20s"}, want: 5 * time.Second},
		{name: "the broker's default maximum", args: []string{"-normalizer-txn-timeout", "15m"}, want: 15 * time.Minute},
		{name: "zero", args: []string{"-normalizer-txn-timeout", "0s"}, bad: true},
		{name: "negative", args: []string{"-normalizer-txn-timeout", "-10s"}, bad: true},
		{name: "shorter than producing and committing a poll may take", args: []string{"-normalizer-txn-timeout", "2s"}, bad: true},
		{name: "above the broker's default maximum", args: []string{"-normalizer-txn-timeout", "16m"}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := NewLoader("serve", io.Discard).Load(tc.args, env(tc.env))
			if tc.bad {
				if err == nil || !strings.Contains(err.Error(), "normalizer txn timeout") {
					t.Fatalf("got %v, want a normalizer txn timeout error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NormalizerTxnTimeout != tc.want {
				t.Fatalf("normalizer txn timeout %v, want %v", cfg.NormalizerTxnTimeout, tc.want)
			}
		})
	}
}
