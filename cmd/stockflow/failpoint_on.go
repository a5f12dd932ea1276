//go:build failpoints

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/stockflow/stockflow/pkg/service"
)

// failpoints arms the failure points named in STOCKFLOW_FAILPOINT. Only
// binaries built with -tags failpoints (the fault suite's) have them.
//
//	crash-after-redis-apply:N  exit at once, as kill -9 would, after the Nth
//	                           poll is applied to Redis and before its
//	                           offsets are recorded or committed
//	crash-after-hold-journal:N exit at once after a hold desk has journaled
//	                           its Nth batch of decisions to the ledger and
//	                           before it answers them
func failpoints(opts *service.Options) {
	fp := os.Getenv("STOCKFLOW_FAILPOINT")
	name, arg, _ := strings.Cut(fp, ":")
	switch name {
	case "":
	case "crash-after-redis-apply":
		n, _ := strconv.Atoi(arg)
		var polls atomic.Int64
		opts.Folder.AfterRedisApply = func(map[int32]int64) error {
			if polls.Add(1) >= int64(n) {
				fmt.Fprintln(os.Stderr, "failpoint crash-after-redis-apply: exiting")
				os.Exit(137)
			}
			return nil
		}
	case "crash-after-hold-journal":
		n, _ := strconv.Atoi(arg)
		var batches atomic.Int64
		opts.Folder.AfterHoldJournal = func() {
			if batches.Add(1) >= int64(n) {
				fmt.Fprintln(os.Stderr, "failpoint crash-after-hold-journal: exiting")
				os.Exit(137)
			}
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown failpoint %q\n", fp)
		os.Exit(exitUsage)
	}
}
