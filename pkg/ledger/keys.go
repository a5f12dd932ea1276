package ledger

// Keys names every Redis key Stockflow writes, each below one prefix (the
// -redis-key-prefix setting). It is the one place a key's layout is spelt:
// the ledger's own keys, and those of the hold API, reconciliation runs and
// the console, which keep their data beside the ledger's.
//
// Keys that must share a Redis Cluster slot carry the same hash tag in
// braces: a SKU's positions and book, a hold's lines, a run's exceptions.
type Keys struct{ prefix string }

// NewKeys returns the key names below prefix.
func NewKeys(prefix string) Keys { return Keys{prefix: prefix} }

// Prefix is what every key starts with, before a colon.
func (k Keys) Prefix() string { return k.prefix }

// All is the pattern matching every key below the prefix (for SCAN).
func (k Keys) All() string { return k.prefix + ":*" }

// SKU is the start of every key of sku, with its hash tag.
func (k Keys) SKU(sku string) string { return k.prefix + ":{" + sku + "}" }

// Hold is the hash holding a hold's lines and its expiry.
func (k Keys) Hold(id string) string { return k.prefix + ":{hold:" + id + "}" }

// HoldAnswers is the list an API instance's hold answers are pushed to.
func (k Keys) HoldAnswers(instance string) string { return k.prefix + ":holds:" + instance }

// ReconcileRuns is the index of reconciliation runs, newest last.
func (k Keys) ReconcileRuns() string { return k.prefix + ":recon:runs" }

// ReconcileRun is a reconciliation run's summary; its exceptions are kept
// in keys that share its hash tag (ReconcileRunPart).
func (k Keys) ReconcileRun(id string) string { return k.prefix + ":{recon:" + id + "}" }

// ReconcileRunPart is one part of a run's exceptions: "x" the list, "xs"
// the stored exceptions, "xi" their index by class and location.
func (k Keys) ReconcileRunPart(id, part string) string { return k.ReconcileRun(id) + ":" + part }

// DeadLetterState is the console's record of dead letters replayed or
// discarded.
func (k Keys) DeadLetterState() string { return k.prefix + ":dlq:state" }

// ConsoleAudit is the console's audit list of actions taken.
func (k Keys) ConsoleAudit() string { return k.prefix + ":console:audit" }

// name is a key of the ledger outside any SKU.
func (k Keys) name(n string) string { return k.prefix + ":" + n }
