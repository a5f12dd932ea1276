package ledger

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The normalizers keep an index of order lines and PO lines, because later
// events of a document (a cancellation, an acknowledgement, a close) name
// lines but not their SKU. Writes are idempotent: a normalizer that retries
// a batch writes the same fields again.

func orderIndexKey(orderID string) string { return "sf:ord:" + orderID }
func poIndexKey(po string) string         { return "sf:po:" + po }

// IndexedLine is what the index remembers of a document line.
type IndexedLine struct {
	Line     string // order line id, or PO line number
	SKU      string
	Location string // empty when the order line is against a group
	Group    string
	UoM      string    // PO lines: the unit their quantities are in
	Released time.Time // PO lines: when the PO was released (event time)
}

func (l IndexedLine) encode() string {
	ms := ""
	if !l.Released.IsZero() {
		ms = strconv.FormatInt(l.Released.UnixMilli(), 10)
	}
	return l.SKU + "|" + l.Location + "|" + l.Group + "|" + l.UoM + "|" + ms
}

func decodeIndexed(line, v string) IndexedLine {
	parts := strings.SplitN(v, "|", 5)
	for len(parts) < 5 {
		parts = append(parts, "")
	}
	l := IndexedLine{Line: line, SKU: parts[0], Location: parts[1], Group: parts[2], UoM: parts[3]}
	if ms, err := strconv.ParseInt(parts[4], 10, 64); err == nil {
		l.Released = time.UnixMilli(ms).UTC()
	}
	return l
}

// IndexOrder records an order's lines.
func (s *Store) IndexOrder(ctx context.Context, orderID string, lines []IndexedLine) error {
	return s.index(ctx, orderIndexKey(orderID), lines)
}

// IndexPO records a purchase order's lines.
func (s *Store) IndexPO(ctx context.Context, po string, lines []IndexedLine) error {
	return s.index(ctx, poIndexKey(po), lines)
}

func (s *Store) index(ctx context.Context, key string, lines []IndexedLine) error {
	if len(lines) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(lines))
	for _, l := range lines {
		args = append(args, l.Line, l.encode())
	}
	if err := s.rdb.HSet(ctx, key, args...).Err(); err != nil {
		return fmt.Errorf("index %s: %w", key, err)
	}
	return nil
}

// OrderLines returns the indexed lines of an order (none when unknown).
func (s *Store) OrderLines(ctx context.Context, orderID string) ([]IndexedLine, error) {
	return s.lines(ctx, orderIndexKey(orderID))
}

// POLines returns the indexed lines of a purchase order (none when unknown).
func (s *Store) POLines(ctx context.Context, po string) ([]IndexedLine, error) {
	return s.lines(ctx, poIndexKey(po))
}

func (s *Store) lines(ctx context.Context, key string) ([]IndexedLine, error) {
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("read index %s: %w", key, err)
	}
	out := make([]IndexedLine, 0, len(m))
	for k, v := range m {
		out = append(out, decodeIndexed(k, v))
	}
	// Stable order: numeric when the line ids are numbers.
	sortLines(out)
	return out, nil
}

func sortLines(ls []IndexedLine) {
	slices.SortFunc(ls, func(a, b IndexedLine) int {
		x, e1 := strconv.Atoi(a.Line)
		y, e2 := strconv.Atoi(b.Line)
		if e1 == nil && e2 == nil {
			return x - y
		}
		return strings.Compare(a.Line, b.Line)
	})
}
