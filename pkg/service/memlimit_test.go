package service

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stockflow/stockflow/pkg/config"
)

func TestMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	v2 := write("memory.max", "1073741824\n")
	unlimited := write("unlimited.max", "max\n")
	v1Huge := write("limit_in_bytes", "9223372036854771712\n")
	noEnv := func(string) string { return "" }
	withCfg := func(mib int) config.Config {
		c := config.Default()
		c.MemoryLimitMiB = mib
		return c
	}
	for _, tc := range []struct {
		name  string
		cfg   config.Config
		env   func(string) string
		files []string
		want  int64
	}{
		{"80% of the container's limit", withCfg(0), noEnv, []string{v2}, 858993459},
		{"configured, the container's ignored", withCfg(300), noEnv, []string{v2}, 300 << 20},
		{"-1: none, whatever the container", withCfg(-1), noEnv, []string{v2}, 0},
		{"GOMEMLIMIT wins", withCfg(300), func(k string) string {
			if k == "GOMEMLIMIT" {
				return "200MiB"
			}
			return ""
		}, []string{v2}, 0},
		{"no container limit (v2 max)", withCfg(0), noEnv, []string{unlimited}, 0},
		{"no container limit (v1's huge number)", withCfg(0), noEnv, []string{v1Huge}, 0},
		{"not in a cgroup", withCfg(0), noEnv, []string{filepath.Join(dir, "absent")}, 0},
		{"v1 after a missing v2", withCfg(0), noEnv, []string{filepath.Join(dir, "absent"), v2}, 858993459},
	} {
		got, from := memoryLimit(tc.cfg, tc.env, tc.files)
		if got != tc.want {
			t.Errorf("%s: limit %d (from %q), want %d", tc.name, got, from, tc.want)
		}
	}
}
