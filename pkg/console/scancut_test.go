package console

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A scan that runs out of time answers with what it read, saying so. A
// transaction aborted after another began, and left open, ends the
// partition in records a read_committed reader never gets: it cannot tell
// that it has read all there is before the open one.
func TestSlowScanIsCutShortAndSaysSo(t *testing.T) {
	f := newDLQFixture(t, 1, func(c *Config) { c.ScanTimeout = time.Second })
	f.write(f.deadLetterRecord(0, "bad_magic", "A", []byte("a")))
	ctx := context.Background()
	aborted := transaction(t, f.brokers, f.deadLetterRecord(0, "bad_magic", "B", []byte("b")))
	transaction(t, f.brokers, f.deadLetterRecord(0, "bad_magic", "C", []byte("c")))
	if err := aborted.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	code, body := f.get(rctx, "/console/exceptions?state=all")
	if code != http.StatusOK || !slices.Equal(listed(body), []string{"0:0"}) {
		t.Fatalf("%d, listed %v; want 200 listing what was read", code, listed(body))
	}
	if !strings.Contains(body, `id="dlq-cut"`) {
		t.Error("the page does not say that the scan was cut short")
	}
}
