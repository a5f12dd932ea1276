package service

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/stockflow/stockflow/pkg/config"
)

// containerShare is the part of a container's memory limit the soft limit
// takes when none is configured: the rest is room for what the Go heap
// does not count (stacks, the runtime's own, Kafka client buffers not yet
// handed over, the page cache of the process's files).
const containerShare = 0.8

// cgroupLimitFiles hold a container's memory limit: cgroup v2, then v1.
var cgroupLimitFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimit is the soft memory limit a serve process sets (bytes, and
// where it comes from), or 0 when it sets none: GOMEMLIMIT when the
// environment has it (the runtime took it already), else the configured
// limit, else a share of the container's limit read from files.
func memoryLimit(cfg config.Config, getenv func(string) string, files []string) (int64, string) {
	switch {
	case getenv("GOMEMLIMIT") != "":
		return 0, "GOMEMLIMIT"
	case cfg.MemoryLimitMiB > 0:
		return int64(cfg.MemoryLimitMiB) << 20, "memory-limit-mib"
	case cfg.MemoryLimitMiB < 0:
		return 0, ""
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		// "max" (v2), or a huge number (v1), is no limit.
		if err != nil || n <= 0 || n >= math.MaxInt64/2 {
			continue
		}
		return int64(float64(n) * containerShare), "container limit " + f
	}
	return 0, ""
}

// setMemoryLimit sets the process's soft memory limit from the
// configuration or the container, and says which.
func setMemoryLimit(cfg config.Config, log *slog.Logger) {
	limit, from := memoryLimit(cfg, os.Getenv, cgroupLimitFiles)
	switch {
	case from == "GOMEMLIMIT":
		log.Info("soft memory limit from GOMEMLIMIT", "bytes", debug.SetMemoryLimit(-1))
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("soft memory limit", "mib", limit>>20, "from", from)
	default:
		log.Info("no soft memory limit: none configured (-memory-limit-mib) and no container limit found")
	}
}
