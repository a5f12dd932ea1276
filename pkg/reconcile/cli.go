package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stockflow/stockflow/pkg/config"
)

// The command `stockflow reconcile` sends a snapshot file to be reconciled,
// follows its run through the service's API, writes the run's exceptions
// to a report and applies its corrections. The command itself only reads
// its flags and configuration; what it does is here, as CLI.

// CLIFlags are the flags of `stockflow reconcile`, as given.
type CLIFlags struct {
	File, Source, AsOf, SnapshotID, Locations string
	Run                                       string
	Report                                    string
	Apply                                     bool
	ApplyClasses, ApplyLocations              string
	API, APIKey                               string
	Wait                                      time.Duration
	NoWait, NoProgress                        bool
	MaxLineBytes                              int
}

// cliJob is what the flags ask for, checked.
type cliJob struct {
	CLIFlags
	asOfTime  time.Time
	locs      []string
	classes   []string
	applyLocs []string
}

// CLI carries out one reconcile command.
type CLI struct {
	job     cliJob
	cfg     config.Config
	api     *apiClient
	stdout  io.Writer
	stderr  io.Writer
	summary io.Writer
}

// NewCLI checks the flags and returns the command they ask for, which
// produces to the Kafka cfg names and calls the API at -api or, without
// it, at cfg.HTTPAddr. Its error is a usage error. The run's summary goes
// to stdout, or to stderr when the report does (-report -).
func NewCLI(f CLIFlags, cfg config.Config, stdout, stderr io.Writer) (*CLI, error) {
	job, err := checkCLIFlags(f, cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	c := &CLI{job: job, cfg: cfg, stdout: stdout, stderr: stderr,
		api: &apiClient{base: job.API, key: job.APIKey, hc: &http.Client{Timeout: 30 * time.Second}}}
	if job.Report == "-" {
		c.summary = stderr // stdout carries the report
	} else {
		c.summary = stdout
	}
	return c, nil
}

var idRule = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// checkCLIFlags validates the flags; its error is a usage error.
func checkCLIFlags(f CLIFlags, httpAddr string) (cliJob, error) {
	j := cliJob{CLIFlags: f}
	switch {
	case f.File == "" && f.Run == "":
		return j, errors.New("give -file to send a snapshot or -run to show a run")
	case f.File != "" && f.Run != "":
		return j, errors.New("-file and -run do not go together: -file sends a snapshot, -run shows one already sent")
	}
	var err error
	if f.File != "" {
		if err := checkID("-source", f.Source, true); err != nil {
			return j, err
		}
		if f.AsOf == "" {
			return j, errors.New("-as-of is required with -file: when the balances were taken, e.g. 2026-11-27T06:00:00Z")
		}
		if j.asOfTime, err = time.Parse(time.RFC3339, f.AsOf); err != nil {
			return j, fmt.Errorf("-as-of: %q is not an RFC 3339 time such as 2026-11-27T06:00:00Z", f.AsOf)
		}
		if err := checkID("-snapshot-id", f.SnapshotID, false); err != nil {
			return j, err
		}
		if j.locs, err = idList("-locations", f.Locations); err != nil {
			return j, err
		}
		if f.NoWait && (f.Report != "" || f.Apply) {
			return j, errors.New("-report and -apply need the run finished: they do not go with -no-wait")
		}
	} else {
		for name, v := range map[string]string{"-source": f.Source, "-as-of": f.AsOf, "-snapshot-id": f.SnapshotID, "-locations": f.Locations} {
			if v != "" {
				return j, fmt.Errorf("%s goes with -file, not -run", name)
			}
		}
		if err := checkID("-run", f.Run, true); err != nil {
			return j, err
		}
	}
	if f.Report != "" && f.Report != "-" {
		if ext := strings.ToLower(filepath.Ext(f.Report)); ext != ".csv" && ext != ".json" {
			return j, fmt.Errorf("-report: %q does not end in .csv or .json (- writes CSV to stdout)", f.Report)
		}
	}
	if !f.Apply && (f.ApplyClasses != "" || f.ApplyLocations != "") {
		return j, errors.New("-apply-classes and -apply-locations go with -apply")
	}
	if j.classes, err = idList("-apply-classes", f.ApplyClasses); err != nil {
		return j, err
	}
	for _, c := range j.classes {
		if !slices.Contains(Correctable, c) {
			return j, fmt.Errorf("-apply-classes: %q cannot be applied (correctable: %s)", c, strings.Join(Correctable, ", "))
		}
	}
	if j.applyLocs, err = idList("-apply-locations", f.ApplyLocations); err != nil {
		return j, err
	}
	if f.Wait <= 0 {
		return j, fmt.Errorf("-wait: %v is not a positive duration", f.Wait)
	}
	if f.MaxLineBytes < 64 || f.MaxLineBytes > 64<<20 {
		return j, fmt.Errorf("-max-line-bytes: %d is outside 64..%d", f.MaxLineBytes, 64<<20)
	}
	if j.API, err = apiBase(f.API, httpAddr); err != nil {
		return j, err
	}
	return j, nil
}

func checkID(flag, v string, required bool) error {
	switch {
	case v == "" && required:
		return fmt.Errorf("%s is required", flag)
	case v != "" && !idRule.MatchString(v):
		return fmt.Errorf("%s: %q is not an id (1 to 64 of A-Z a-z 0-9 . _ -)", flag, v)
	}
	return nil
}

// idList splits a comma-separated list of ids, dropping repeats.
func idList(flag, s string) ([]string, error) {
	var out []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := checkID(flag, part, false); err != nil {
			return nil, err
		}
		if !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out, nil
}

// apiBase is the API's base URL: -api, or the service's listen address
// (an unspecified host there means this machine).
func apiBase(api, httpAddr string) (string, error) {
	if api == "" {
		host, port, err := net.SplitHostPort(httpAddr)
		if err != nil {
			return "", fmt.Errorf("-api: none given, and the HTTP address %q is not host:port", httpAddr)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		api = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-api: %q is not an http or https URL", api)
	}
	return strings.TrimRight(api, "/"), nil
}

// Do carries out the command: sends the file (unless its run exists),
// follows the run, prints its summary, writes the report and applies the
// run as the flags ask. It reports every failure on stderr as it comes,
// and says whether the run completed and all that was asked succeeded.
func (c *CLI) Do(ctx context.Context) bool {
	id := c.job.Run
	if c.job.File != "" {
		var ok, done bool
		if id, ok, done = c.send(ctx); done {
			return ok
		}
	}
	run, err := c.follow(ctx, id)
	if err != nil {
		c.fail(err)
		return false
	}
	c.printSummary(&run)
	ok := run.Status == StatusCompleted
	if c.job.Report != "" {
		if err := c.writeReport(ctx, id); err != nil {
			c.fail(fmt.Errorf("report: %w", err))
			ok = false
		}
	}
	if c.job.Apply {
		if err := c.applyRun(ctx, id); err != nil {
			c.fail(fmt.Errorf("apply: %w", err))
			ok = false
		}
	}
	return ok
}

func (c *CLI) fail(err error) {
	fmt.Fprintf(c.stderr, "stockflow reconcile: %v\n", err)
}
