package bench

import (
	"strings"
	"testing"

	"github.com/stockflow/stockflow/pkg/config"
)

// The backlog's serve process gets the run's folder and memory settings,
// and its row says which of them are not the defaults.
func TestBacklogCarriesTheRunsFolderSettings(t *testing.T) {
	r := &Run{cfg: config.Default()}
	cfg := r.backlogConfig(0)
	if got := settingsOf(cfg); got != "default settings" {
		t.Fatalf("a run with the defaults: %q", got)
	}
	r.cfg.FolderPollRecords, r.cfg.MemoryLimitMiB = 5000, 300
	cfg = r.backlogConfig(1)
	if cfg.FolderPollRecords != 5000 || cfg.MemoryLimitMiB != 300 {
		t.Fatalf("the serve process gets polls of %d, a limit of %d MiB", cfg.FolderPollRecords, cfg.MemoryLimitMiB)
	}
	env := strings.Join(cfg.Env(), " ")
	for _, kv := range []string{"STOCKFLOW_FOLDER_POLL_RECORDS=5000", "STOCKFLOW_MEMORY_LIMIT_MIB=300"} {
		if !strings.Contains(env, kv) {
			t.Errorf("the serve process's environment lacks %s: %s", kv, env)
		}
	}
	if got := settingsOf(cfg); got != "default settings but -folder-poll-records 5000 -memory-limit-mib 300" {
		t.Fatalf("the row says %q", got)
	}
}
