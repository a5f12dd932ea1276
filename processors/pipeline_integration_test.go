//go:build integration

package processors

import (
	"sync/atomic"
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

var realDB atomic.Int32

// realEnv gives each test its own topics, groups and Redis database on the
// real stack started by deploy/local.
func realEnv(t *testing.T) *env {
	t.Helper()
	db := 4 + int(realDB.Add(1))%10
	cfg := testenv.Config(t, db)
	return newEnv(t, cfg, testenv.Redis(t, db))
}

func TestPipelineRealStack(t *testing.T) {
	runPipelineSuite(t, realEnv)
}
