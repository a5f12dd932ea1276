package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/events"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/pkg/telemetry"
)

const dlqUsage = `usage: stockflow dlq list|replay [flags]

  list    show dead letters with their class, source and time, and a count per class
  replay  re-produce the selected dead letters to their source topics (safe to repeat)

filters: -class, -source-topic, -since, -until (RFC 3339 or a duration ago such as 2h),
-offsets 0:15,3:7 (dead-letter partition:offset)
`

func dlq(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprint(stderr, dlqUsage)
		return exitUsage
	}
	verb := args[0]
	groups := config.KafkaOptions | config.TopicOptions | config.LogOptions
	if verb == "replay" {
		// Replay re-encodes what it produces; list reads no payloads.
		groups |= config.RecordOptions
	}
	l := config.NewLoader("dlq "+verb, stderr, groups)
	var class, source, since, until, offsets string
	l.FlagSet.StringVar(&class, "class", "", "only this error class, e.g. unknown_uom")
	l.FlagSet.StringVar(&source, "source-topic", "", "only dead letters from this topic")
	l.FlagSet.StringVar(&since, "since", "", "only dead letters at or after this time")
	l.FlagSet.StringVar(&until, "until", "", "only dead letters at or before this time")
	l.FlagSet.StringVar(&offsets, "offsets", "", "only these dead letters, partition:offset, comma-separated")
	cfg, code, ok := load(l, args[1:], stderr)
	if !ok {
		return code
	}
	if len(cfg.Kafka.Brokers) == 0 {
		cfg.Kafka.Brokers = []string{"127.0.0.1:19092"}
	}
	f := deadletter.Filter{Class: class, SourceTopic: source}
	var err error
	if f.Since, err = parseWhen(since); err != nil {
		fmt.Fprintf(stderr, "stockflow dlq: -since: %v\n", err)
		return exitUsage
	}
	if f.Until, err = parseWhen(until); err != nil {
		fmt.Fprintf(stderr, "stockflow dlq: -until: %v\n", err)
		return exitUsage
	}
	if f.Offsets, err = parseOffsets(offsets); err != nil {
		fmt.Fprintf(stderr, "stockflow dlq: -offsets: %v\n", err)
		return exitUsage
	}
	log := telemetry.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if verb == "replay" {
		cl, err := kgo.NewClient(kafka.ClientOpts(cfg.Kafka, kgo.RequiredAcks(kgo.AllISRAcks()))...)
		if err != nil {
			log.Error("kafka client", "err", err)
			return exitFailed
		}
		defer cl.Close()
		codec, err := events.OpenCodec(cfg.SchemaRegistry, cfg.MaxRecordBytes)
		if err != nil {
			log.Error("codec", "err", err)
			return exitFailed
		}
		res, err := deadletter.Replay(ctx, cl, cfg.Topics.DLQ, deadletter.ReplayTargets{Topics: cfg.Topics, Codec: codec}, f, log)
		// What was replayed before a failure went out: say so either way.
		fmt.Fprintf(stdout, "replayed %d dead letters\n", res.Replayed)
		for at, why := range res.Refused {
			fmt.Fprintf(stdout, "not replayed %s: %s\n", at, why)
		}
		if res.RefusedMore > 0 {
			fmt.Fprintf(stdout, "not replayed: %d more, not listed\n", res.RefusedMore)
		}
		if err != nil {
			log.Error("replay", "err", err)
			return exitFailed
		}
		return exitOK
	}
	return listDeadLetters(ctx, cfg, f, stdout, log)
}

// Bounds on what `dlq list` holds, whatever the topic holds: a line's
// class, topic and message are clipped, rows are written a page at a time,
// and counts are kept for this many classes (the rest as "(other)").
const (
	dlqListClip    = 200
	dlqListPage    = 100
	dlqListClasses = 1000
)

// listDeadLetters prints the matching dead letters, then their counts by
// class.
func listDeadLetters(ctx context.Context, cfg config.Config, f deadletter.Filter, stdout io.Writer, log *slog.Logger) int {
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ\tTIME\tCLASS\tSOURCE\tREPLAYED\tMESSAGE")
	byClass := map[string]int{}
	rows := 0
	err := deadletter.Scan(ctx, kafka.Conn(cfg.Kafka), cfg.Topics.DLQ, f, func(d deadletter.DeadLetter) error {
		class := clipText(d.Class, dlqListClip)
		if _, ok := byClass[class]; !ok && len(byClass) >= dlqListClasses {
			class = "(other)"
		}
		byClass[class]++
		fmt.Fprintf(tw, "%d:%d\t%s\t%s\t%s/%d@%d\t%v\t%s\n", d.Partition, d.Offset, d.Time.Format(time.RFC3339),
			clipText(d.Class, dlqListClip), clipText(d.SourceTopic, dlqListClip), d.SourcePartition, d.SourceOffset, d.Replayed,
			clipText(d.Message, dlqListClip))
		if rows++; rows%dlqListPage == 0 {
			tw.Flush()
		}
		return nil
	})
	tw.Flush()
	if err != nil {
		// What was read is listed above; the counts below cover it.
		log.Error("list", "err", err)
	}
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	fmt.Fprintln(stdout)
	for _, c := range classes {
		fmt.Fprintf(stdout, "%-20s %d\n", c, byClass[c])
	}
	if err != nil {
		return exitFailed
	}
	return exitOK
}

// clipText is s cut to at most n bytes on a rune boundary, with the tabs
// and line breaks that would break the table's layout replaced.
func clipText(s string, n int) string {
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return t, nil
}

func parseOffsets(s string) (map[int32][]int64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[int32][]int64{}
	for _, part := range strings.Split(s, ",") {
		p, o, ok := strings.Cut(strings.TrimSpace(part), ":")
		pi, err1 := strconv.ParseInt(p, 10, 32)
		oi, err2 := strconv.ParseInt(o, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q is not partition:offset", part)
		}
		out[int32(pi)] = append(out[int32(pi)], oi)
	}
	return out, nil
}
