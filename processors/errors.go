// Package processors holds Stockflow's stream processors: the normalizers,
// which turn source events into per-SKU ledger entries in one Kafka
// transaction, and the ledger folder, which applies those entries to Redis
// with exactly-once effect and publishes availability changes and alerts.
//
// One function decides what happens to a failed record: Reject errors
// (the record itself is bad) go to the dead-letter topic; every other error
// is infrastructure and is retried, never dead-lettered (docs/design.md
// §3.5, §16.1).
//
// See docs/design.md: §3 the normalizers and the catalog reader, §4 the
// document index, §6 the folder, §7.1 the hold desks, §11 dead letters and
// replay, §12.1 the snapshot reconciler's consumer, §13 verify.
package processors

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockflow/stockflow/pkg/avro"
	"github.com/stockflow/stockflow/pkg/config"
	"github.com/stockflow/stockflow/pkg/deadletter"
	"github.com/stockflow/stockflow/pkg/kafka"
	"github.com/stockflow/stockflow/processors/sources"
)

// Dead-letter error classes beyond the decoder's (see pkg/avro). Their
// names are part of the dead-letter format, which pkg/deadletter keeps.
const (
	ClassInvalid          = deadletter.ClassInvalid
	ClassWrongTopic       = deadletter.ClassWrongTopic
	ClassUnknownUoM       = deadletter.ClassUnknownUoM
	ClassUnknownReference = deadletter.ClassUnknownReference
)

// sessionTimeout is the configured group session timeout, or franz-go's
// default when unset.
func sessionTimeout(k config.Kafka) time.Duration {
	if k.SessionTimeout <= 0 {
		return 45 * time.Second
	}
	return k.SessionTimeout
}

// leaveGroup takes a static member (instanceID) out of its group when it
// stops: a static member's own client does not leave, and its partitions
// would wait for the session timeout. Nothing to do for a dynamic member.
func leaveGroup(k config.Kafka, group, instanceID string, log *slog.Logger) {
	if instanceID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kafka.Conn(k)...)
	if err != nil {
		log.Warn("leaving the group", "group", group, "err", err)
		return
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs(instanceID).Reason("stopping"))
	if err == nil {
		err = resp.Error()
	}
	if err != nil && !errors.Is(err, kerr.UnknownMemberID) {
		log.Warn("leaving the group; its partitions move after the session timeout", "group", group, "err", err)
		return
	}
	log.Info("left the group", "group", group, "instance_id", instanceID)
}

// RejectError says a record can never be processed as it is.
type RejectError = sources.RejectError

func reject(class, format string, a ...any) error { return sources.Reject(class, format, a...) }

// deadLetterClass returns the class under which a failed record goes to the
// dead-letter topic, or "" when the error is infrastructure and the record
// must be retried.
func deadLetterClass(err error) string {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Class
	}
	if c := avro.ClassOf(err); c != "" {
		return string(c)
	}
	return ""
}

// logFetchErrors logs the errors of a poll, what names the consumer. A poll
// bounded by a deadline that passed is not an error: it found nothing.
func logFetchErrors(log *slog.Logger, what string, fs kgo.Fetches) {
	fs.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) {
			log.Warn(what+" fetch error", "topic", topic, "partition", p, "err", err)
		}
	})
}
