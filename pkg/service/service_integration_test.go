//go:build integration

package service

import (
	"testing"

	"github.com/stockflow/stockflow/pkg/testenv"
)

func TestServeOnRealStackBecomesReady(t *testing.T) {
	cfg := testenv.Config(t, 2)
	startServe(t, cfg, Options{})
}
