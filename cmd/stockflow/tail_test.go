package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestTailUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no topic", []string{"tail"}, "usage: stockflow tail TOPIC"},
		{"no topic after the flags", []string{"tail", "-from-beginning"}, "usage: stockflow tail TOPIC"},
		{"two topics", []string{"tail", "availability", "-sku", "S", "dlq"}, "usage: stockflow tail TOPIC"},
		{"unknown format", []string{"tail", "-format", "yaml", "availability"}, `format: "yaml" is not json or table`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}
