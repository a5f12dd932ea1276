package ledger

import "strconv"

// Keys names the Redis keys Stockflow writes, each below one prefix (the
// -redis-key-prefix setting): the ledger's own, and those of the hold API,
// reconciliation runs and the console, which keep their data beside the
// ledger's. docs/design.md §15 lists the whole layout. It is the one place
// a key's layout is spelt: the other packages take their names from here.
//
// Keys that must share a Redis Cluster slot carry the same hash tag in
// braces: a SKU's positions and book, a hold_id's record and the
// bookkeeping of its attempts, a run's exceptions.
type Keys struct{ prefix string }

// NewKeys returns the key names below prefix.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix is what every key starts with, before a colon.
func (k Keys) Prefix() string { return k.prefix }

// All is the pattern matching every key below the prefix (for SCAN).
func (k Keys) All() string { return k.prefix + ":*" }

// SKU is the start of every key of sku, with its hash tag; persist.go lists
// the keys below it (docs/design.md §15.1).
func (k Keys) SKU(sku string) string { return k.prefix + ":{" + sku + "}" }

// Hold is the string holding a hold_id's answer, as JSON (the HTTP status
// and response, the ledger's id of the attempt, the owner and fingerprint,
// whether it was released), kept for the hold's TTL plus an hour. The
// claim, lock, try counter and open attempts of the hold_id are keys below
// it, under the same hash tag (docs/design.md §7.2, §15.4).
func (k Keys) Hold(id string) string { return k.prefix + ":{hold:" + id + "}" }

// HoldPart is one piece of a hold_id's bookkeeping beside its answer:
// "claim" (who decides it), "lock", "try" (the attempt counter), "open"
// (the attempts not answered yet).
func (k Keys) HoldPart(id, part string) string { return k.Hold(id) + ":" + part }

// HoldFence is the epoch of ledger partition p's hold desk (an INCR
// counter): a desk that took it fences out the ones before.
func (k Keys) HoldFence(topic string, p int32) string {
	return k.prefix + ":{holdfence:" + topic + ":" + strconv.Itoa(int(p)) + "}"
}

// HoldDecision is the hold desk's record of the decision on one line of a
// hold (HoldKey), beside its partition's fence.
func (k Keys) HoldDecision(topic string, p int32, holdLine string) string {
	return k.HoldFence(topic, p) + ":a:" + holdLine
}

// HoldAnswers is not a key but the Pub/Sub channel an API instance
// subscribes to for the hold decisions it waits on: the reply_to of its
// hold requests (docs/design.md §7.2, §15.4).
func (k Keys) HoldAnswers(instance string) string { return k.prefix + ":holds:" + instance }

// ReconcileRuns is the sorted set of reconciliation run ids, scored by
// start time (ms), from which runs older than the retention are pruned
// (docs/design.md §12.4).
func (k Keys) ReconcileRuns() string { return k.prefix + ":recon:runs" }

// ReconcileRun is the string holding a reconciliation run, as JSON; its
// exceptions are kept in keys that share its hash tag (ReconcileRunPart).
func (k Keys) ReconcileRun(id string) string { return k.prefix + ":{recon:" + id + "}" }

// ReconcileRunPart is one part of a run's exceptions: "xs" the hash of the
// exceptions by sequence number, "xi" the sorted set indexing them by class
// and by class and location, "x" the list that runs stored before the
// index keep them in (docs/design.md §12.4).
func (k Keys) ReconcileRunPart(id, part string) string { return k.ReconcileRun(id) + ":" + part }

// DeadLetterState is the console's hash of dead letters replayed or
// discarded: "partition:offset" on the dead-letter topic -> the mark (JSON:
// state, when, by whom, why, the record's time). A dead letter without a
// field is open (docs/design.md §11.3).
func (k Keys) DeadLetterState() string { return k.prefix + ":dlq:state" }

// ConsoleAudit is the console's list of the actions taken in it (JSON),
// newest first, trimmed to the last 10,000.
func (k Keys) ConsoleAudit() string { return k.prefix + ":console:audit" }

// name is a key of the ledger outside any SKU.
func (k Keys) name(n string) string { return k.prefix + ":" + n }
