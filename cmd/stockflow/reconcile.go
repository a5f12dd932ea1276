package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/reconcile"
)

const reconcileUsage = `usage: stockflow reconcile -file FILE -source SYSTEM -as-of TIME [flags]
       stockflow reconcile -run ID [flags]

Send a stock snapshot exported as CSV to be compared with the ledger as it
stood at -as-of, follow its run and print the positions by class; or show an
existing run. The file's header names the columns sku, location, quantity
and optionally uom (default EA), in any order; a line that cannot be read is
sent as an invalid line with its reason. The file is read twice and never
held in memory.

The snapshot id (default: source, as-of and the file's digest) names the
run: sending the same file for the same source and time again shows the
first run instead of comparing again.

  stockflow reconcile -file erp.csv -source ERP-EAST -as-of 2026-11-27T06:00:00Z -report drift.csv
  stockflow reconcile -run ERP-EAST-20261127T060000Z-0123456789ab -apply -apply-classes drift

Exit status: 0 when the run completed (drift or not), 1 when it is
incomplete or refused or something failed, 2 for a usage error.

flags:
`

// reconcileCmd reads the flags and configuration of stockflow reconcile;
// reconcile.CLI carries the command out.
func reconcileCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// -http-addr is where the service's API is called without -api.
	l := config.NewLoader("reconcile", stderr, config.KafkaOptions, config.TopicOptions, config.RecordOptions, config.HTTPOptions)
	var f reconcile.CLIFlags
	fs := l.FlagSet
	fs.StringVar(&f.File, "file", "", "the snapshot, a CSV file with the columns sku, location, quantity and optionally uom")
	fs.StringVar(&f.Source, "source", "", "the system whose balances the file holds, e.g. ERP-EAST (required with -file)")
	fs.StringVar(&f.AsOf, "as-of", "", "when the balances were taken, RFC 3339 (required with -file)")
	fs.StringVar(&f.SnapshotID, "snapshot-id", "", "the snapshot's id (default: source, as-of and the start of the file's SHA-256)")
	fs.StringVar(&f.Locations, "locations", "", "the locations the snapshot covers, comma-separated (default: those in the file)")
	fs.StringVar(&f.Run, "run", "", "show the run of this snapshot id instead of sending a file")
	fs.StringVar(&f.Report, "report", "", "write the run's exceptions to this .csv or .json file (- for CSV on stdout)")
	fs.BoolVar(&f.Apply, "apply", false, "apply the run's corrections to the ledger (needs an admin API key)")
	fs.StringVar(&f.ApplyClasses, "apply-classes", "", "classes to correct with -apply, comma-separated: "+strings.Join(reconcile.Correctable, ", ")+" (default drift)")
	fs.StringVar(&f.ApplyLocations, "apply-locations", "", "correct only these locations with -apply, comma-separated (default all)")
	fs.StringVar(&f.API, "api", "", "the service's HTTP API (default http:// and -http-addr)")
	fs.StringVar(&f.APIKey, "api-key", "", "API key for the HTTP API (default env STOCKFLOW_API_KEY)")
	fs.DurationVar(&f.Wait, "wait", 10*time.Minute, "how long to wait for the run to finish")
	fs.BoolVar(&f.NoWait, "no-wait", false, "send the snapshot and return without following its run")
	fs.BoolVar(&f.NoProgress, "no-progress", false, "show no progress")
	fs.IntVar(&f.MaxLineBytes, "max-line-bytes", reconcile.DefaultMaxRecordBytes,
		"the longest record the file may hold, in bytes (a line, or the lines of a quoted field): a longer one stops the command")
	fs.Usage = func() {
		fmt.Fprint(stderr, reconcileUsage)
		fs.PrintDefaults()
	}
	cfg, code, ok := load(l, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stockflow reconcile: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if f.APIKey == "" {
		f.APIKey = os.Getenv("STOCKFLOW_API_KEY")
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = []string{"127.0.0.1:19092"}
	}
	cli, err := reconcile.NewCLI(f, cfg, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "stockflow reconcile: %v\n", err)
		return exitUsage
	}
	if !cli.Do(ctx) {
		return exitFailed
	}
	return exitOK
}
