package bench

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

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
	r.cfg.FolderPollRecords, r.cfg.MemoryLimitMiB, r.cfg.NormalizerAlign, r.cfg.NormalizerFetchMaxBytes = 5000, 300, 0, 1<<20
	cfg = r.backlogConfig(1)
	if cfg.FolderPollRecords != 5000 || cfg.MemoryLimitMiB != 300 || cfg.NormalizerAlign != 0 || cfg.NormalizerFetchMaxBytes != 1<<20 {
		t.Fatalf("the serve process gets polls of %d, a limit of %d MiB, alignment %v, normalizer fetches of %d", cfg.FolderPollRecords, cfg.MemoryLimitMiB, cfg.NormalizerAlign, cfg.NormalizerFetchMaxBytes)
	}
	env := strings.Join(cfg.Env(), " ")
	for _, kv := range []string{"STOCKFLOW_FOLDER_POLL_RECORDS=5000", "STOCKFLOW_MEMORY_LIMIT_MIB=300", "STOCKFLOW_NORMALIZER_ALIGN=0s", "STOCKFLOW_NORMALIZER_FETCH_MAX_BYTES=1048576"} {
		if !strings.Contains(env, kv) {
			t.Errorf("the serve process's environment lacks %s: %s", kv, env)
		}
	}
	if got := settingsOf(cfg); got != "default settings but -folder-poll-records 5000 -memory-limit-mib 300 -normalizer-fetch-max-bytes 1048576 -normalizer-align 0s" {
		t.Fatalf("the row says %q", got)
	}
}

// The spread of a group's topics is the largest gap between how far it
// has read each of them, whatever their sizes; topics with no records, a
// lone topic and topics not asked about do not count.
func TestTopicSpread(t *testing.T) {
	part := func(read, end int64) kadm.GroupMemberLag {
		return kadm.GroupMemberLag{Commit: kadm.Offset{At: read}, End: kadm.ListedOffset{Offset: end}}
	}
	for _, c := range []struct {
		name string
		lag  kadm.GroupLag
		want float64
	}{
		{"in step", kadm.GroupLag{"orders": {0: part(50, 100), 1: part(50, 100)}, "wms": {0: part(400, 800)}}, 0},
		{"one read first", kadm.GroupLag{"orders": {0: part(90, 100), 1: part(80, 100)}, "wms": {0: part(0, 800)}, "supplier": {0: part(30, 100)}}, 0.85},
		{"nothing committed yet", kadm.GroupLag{"orders": {0: part(-1, 100)}, "wms": {0: part(800, 800)}}, 1},
		{"an empty topic", kadm.GroupLag{"orders": {0: part(50, 100)}, "supplier": {0: part(-1, 0)}}, 0},
		{"the item master left out", kadm.GroupLag{"orders": {0: part(50, 100)}, "wms": {0: part(400, 800)}, "catalog": {0: part(100, 100)}}, 0},
	} {
		if got := topicSpread(c.lag, "orders", "wms", "supplier"); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("%s: spread %.3f, want %.3f", c.name, got, c.want)
		}
	}
}
