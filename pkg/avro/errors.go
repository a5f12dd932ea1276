package avro

import (
	"errors"
	"fmt"
)

// Class names why a record could not be decoded. The class travels with a
// dead-lettered record as its error class header, so the values are stable.
type Class string

// Decode error classes.
const (
	ClassBadMagic       Class = "bad_magic"
	ClassUnknownSchema  Class = "unknown_schema"
	ClassTruncated      Class = "truncated"
	ClassCorrupt        Class = "corrupt_body"
	ClassOversized      Class = "oversized"
	ClassUnexpectedType Class = "unexpected_type"
	ClassSchemaMismatch Class = "schema_mismatch"
)

// Sentinels, one per class, for errors.Is.
var (
	ErrBadMagic       = errors.New("not Confluent wire format: magic byte is not 0")
	ErrUnknownSchema  = errors.New("unknown schema id")
	ErrTruncated      = errors.New("record is truncated")
	ErrCorrupt        = errors.New("record body is corrupt")
	ErrOversized      = errors.New("record is larger than the configured limit")
	ErrUnexpectedType = errors.New("record is of an unexpected type")
	ErrSchemaMismatch = errors.New("writer schema cannot be read as the canonical schema")
)

var sentinels = map[Class]error{
	ClassBadMagic:       ErrBadMagic,
	ClassUnknownSchema:  ErrUnknownSchema,
	ClassTruncated:      ErrTruncated,
	ClassCorrupt:        ErrCorrupt,
	ClassOversized:      ErrOversized,
	ClassUnexpectedType: ErrUnexpectedType,
	ClassSchemaMismatch: ErrSchemaMismatch,
}

// DecodeError is returned for a record that can never be decoded, however
// often it is retried: such a record belongs in the dead-letter topic.
// Failures to reach a schema registry are not DecodeErrors.
type DecodeError struct {
	Class    Class
	SchemaID int    // 0 when the header was not readable
	Record   string // record full name, when known
	Detail   string
}

func (e *DecodeError) Error() string {
	msg := sentinels[e.Class].Error()
	if e.Record != "" {
		msg += " (" + e.Record + ")"
	} else if e.SchemaID != 0 {
		msg += fmt.Sprintf(" (schema id %d)", e.SchemaID)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap lets errors.Is match the class sentinel.
func (e *DecodeError) Unwrap() error { return sentinels[e.Class] }

// ClassOf returns the class of a decode error, or "" when err is not one.
func ClassOf(err error) Class {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Class
	}
	return ""
}
