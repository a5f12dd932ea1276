// Package telemetry sets up Stockflow's logs (and, as they are added, its
// traces and metrics providers).
package telemetry

import (
	"io"
	"log/slog"
)

// NewLogger returns a structured logger writing format ("json" or "text") at
// level ("debug", "info", "warn", "error") to w.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("service", "stockflow")
}
