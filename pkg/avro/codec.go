// Package avro encodes and decodes Stockflow's records in the Confluent wire
// format: byte 0 is 0, bytes 1–4 are the big-endian schema id, the rest is
// Avro binary.
//
// goavro decodes with the writer's schema only, so the codec resolves the
// writer's data into the canonical schema embedded in the binary by field
// name: a field the writer lacks takes its canonical default, a field the
// canonical schema lacks is ignored. Records that can never be decoded come
// back as *DecodeError with a Class; registry outages come back as plain
// errors so callers retry them instead of dead-lettering.
//
// A type on a hot path can skip goavro and reflection with a hand-written
// codec for its canonical schema (BinaryRecord): the Codec encodes it with
// that, and decodes with it every record whose writer schema is the
// canonical one. Records written with another version of the schema still
// take the goavro path, so the hand-written code never resolves schemas.
//
// See docs/design.md §14.
package avro

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

// Record is a Go type bound to a canonical Avro record.
type Record interface {
	// AvroName is the record's full name, e.g. stockflow.v1.InventoryReceived.
	AvroName() string
}

// headerLen is the magic byte plus the 4-byte schema id.
const headerLen = 5

// Limits on what a single record may make the decoder allocate; goavro sizes
// slices and maps from counts read off the wire.
const (
	maxBlockCount = 1 << 17
	maxBlockSize  = 1 << 24
)

var limitsOnce sync.Once

// Config configures a Codec.
type Config struct {
	// Registry resolves schema ids. Required.
	Registry Registry
	// Canonical maps record full name to the schema text the Go types follow
	// (normally schemas.Manifest, newest per name). Required.
	Canonical map[string]string
	// Types are zero values of the Go types, one per canonical record.
	Types []Record
	// MaxRecordBytes rejects larger records as ClassOversized. Default 1 MiB.
	MaxRecordBytes int
}

type canonical struct {
	name        string
	text        string
	fingerprint string
	node        *node
	codec       *goavro.Codec
	goType      reflect.Type
	// binary says the Go type is a BinaryRecord for this schema.
	binary bool
}

type writer struct {
	name  string
	codec *goavro.Codec
	// canonical says the writer's schema is the canonical one, so a
	// BinaryRecord can read the body without resolution.
	canonical bool
}

// Codec encodes and decodes records. It is safe for concurrent use.
type Codec struct {
	reg    Registry
	maxLen int
	byName map[string]*canonical
	bind   binder

	mu      sync.RWMutex
	writers map[int]*writer
	ids     map[[2]string]int // topic, record name -> id to write with
}

// New builds a codec. Every type in cfg.Types must have a canonical schema
// whose fields it can hold, and a BinaryRecord must implement its canonical
// schema.
func New(cfg Config) (*Codec, error) {
	limitsOnce.Do(func() {
		goavro.MaxBlockCount = min(goavro.MaxBlockCount, maxBlockCount)
		goavro.MaxBlockSize = min(goavro.MaxBlockSize, maxBlockSize)
	})
	if cfg.Registry == nil {
		return nil, errors.New("avro: Config.Registry is required")
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = 1 << 20
	}
	c := &Codec{
		reg:     cfg.Registry,
		maxLen:  cfg.MaxRecordBytes,
		byName:  map[string]*canonical{},
		writers: map[int]*writer{},
		ids:     map[[2]string]int{},
	}
	for _, rec := range cfg.Types {
		name := rec.AvroName()
		text, ok := cfg.Canonical[name]
		if !ok {
			return nil, fmt.Errorf("avro: no canonical schema for %s", name)
		}
		n, err := parseSchema(text)
		if err != nil {
			return nil, fmt.Errorf("avro: %s: %w", name, err)
		}
		gc, err := goavro.NewCodec(text)
		if err != nil {
			return nil, fmt.Errorf("avro: %s: %w", name, err)
		}
		t := reflect.TypeOf(rec)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if err := c.bind.checkType(t, n); err != nil {
			return nil, fmt.Errorf("avro: %w", err)
		}
		fp, err := Fingerprint(text)
		if err != nil {
			return nil, fmt.Errorf("avro: %s: %w", name, err)
		}
		cn := &canonical{name: name, text: text, fingerprint: fp, node: n, codec: gc, goType: t}
		if br, ok := rec.(BinaryRecord); ok {
			if got := br.AvroFingerprint(); got != fp {
				return nil, fmt.Errorf("avro: %s: the Go type's hand-written codec implements the schema with fingerprint %s, "+
					"the canonical schema's is %s: bring AppendAvro and UnmarshalAvro up to the canonical schema, then their fingerprint", name, got, fp)
			}
			cn.binary = true
		}
		c.byName[name] = cn
	}
	return c, nil
}

// Encode appends rec in wire format to dst. The subject for a registry that
// registers schemas follows TopicRecordNameStrategy: topic-recordname.
func (c *Codec) Encode(ctx context.Context, topic string, rec Record) ([]byte, error) {
	return c.AppendEncode(ctx, nil, topic, rec)
}

// AppendEncode is Encode appending to dst.
func (c *Codec) AppendEncode(ctx context.Context, dst []byte, topic string, rec Record) ([]byte, error) {
	name := rec.AvroName()
	cn, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("avro: encode %s: type not registered with the codec", name)
	}
	id, err := c.writeID(ctx, topic, cn)
	if err != nil {
		return nil, fmt.Errorf("avro: encode %s: %w", name, err)
	}
	if br, ok := rec.(BinaryRecord); ok && cn.binary {
		dst = appendHeader(dst, id)
		if dst, err = br.AppendAvro(dst); err != nil {
			return nil, fmt.Errorf("avro: encode %s: %w", name, err)
		}
		return dst, nil
	}
	v := reflect.ValueOf(rec)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	native, err := c.bind.toNative(v, cn.node)
	if err != nil {
		return nil, fmt.Errorf("avro: encode %s: %w", name, err)
	}
	dst, err = cn.codec.BinaryFromNative(appendHeader(dst, id), native)
	if err != nil {
		return nil, fmt.Errorf("avro: encode %s: %w", name, err)
	}
	return dst, nil
}

func appendHeader(dst []byte, id int) []byte {
	return binary.BigEndian.AppendUint32(append(dst, 0), uint32(id))
}

// Register asks the registry, now, for the id rec's type is written with on
// topic (registering its canonical schema under topic-recordname where the
// registry allows), so a writer learns of a refused or unreachable registry
// when it starts rather than at its first record.
func (c *Codec) Register(ctx context.Context, topic string, rec Record) (int, error) {
	name := rec.AvroName()
	cn, ok := c.byName[name]
	if !ok {
		return 0, fmt.Errorf("avro: register %s: type not registered with the codec", name)
	}
	id, err := c.writeID(ctx, topic, cn)
	if err != nil {
		return 0, fmt.Errorf("avro: register %s on %s: %w", name, topic, err)
	}
	return id, nil
}

// writeID is the id to write a record under on topic, asked of the
// registry once: an id never changes meaning.
func (c *Codec) writeID(ctx context.Context, topic string, cn *canonical) (int, error) {
	key := [2]string{topic, cn.name}
	c.mu.RLock()
	id, ok := c.ids[key]
	c.mu.RUnlock()
	if ok {
		return id, nil
	}
	id, err := c.reg.IDFor(ctx, topic+"-"+cn.name, cn.text)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.ids[key] = id
	c.mu.Unlock()
	return id, nil
}

// SchemaID returns the schema id in a wire-format record's header.
func SchemaID(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, &DecodeError{Class: ClassTruncated, Detail: "empty record"}
	}
	if b[0] != 0 {
		return 0, &DecodeError{Class: ClassBadMagic, Detail: fmt.Sprintf("byte 0 is 0x%02x", b[0])}
	}
	if len(b) < headerLen {
		return 0, &DecodeError{Class: ClassTruncated, Detail: fmt.Sprintf("%d bytes, shorter than the 5-byte header", len(b))}
	}
	return int(binary.BigEndian.Uint32(b[1:headerLen])), nil
}

// Decode decodes one wire-format record into its canonical Go type.
func (c *Codec) Decode(ctx context.Context, b []byte) (Record, error) {
	if len(b) > c.maxLen {
		return nil, &DecodeError{Class: ClassOversized, Detail: fmt.Sprintf("%d bytes > %d", len(b), c.maxLen)}
	}
	id, err := SchemaID(b)
	if err != nil {
		return nil, err
	}
	w, err := c.writer(ctx, id)
	if err != nil {
		return nil, err
	}
	cn, ok := c.byName[w.name]
	if !ok {
		return nil, &DecodeError{Class: ClassUnexpectedType, SchemaID: id, Record: w.name, Detail: "no Go type for this record"}
	}
	if w.canonical && cn.binary {
		return decodeBinary(cn, id, b[headerLen:])
	}
	native, rest, err := w.codec.NativeFromBinary(b[headerLen:])
	if err != nil {
		// goavro's messages for running out of input end in io.ErrShortBuffer's
		// text; other messages may hold it quoted within, as a map key.
		class := ClassCorrupt
		if msg := err.Error(); strings.HasSuffix(msg, "short buffer") || strings.HasSuffix(msg, "(short buffer)") {
			class = ClassTruncated
		}
		return nil, &DecodeError{Class: class, SchemaID: id, Record: w.name, Detail: err.Error()}
	}
	if len(rest) != 0 {
		return nil, &DecodeError{Class: ClassCorrupt, SchemaID: id, Record: w.name, Detail: fmt.Sprintf("%d trailing bytes", len(rest))}
	}
	out := reflect.New(cn.goType)
	if err := c.bind.fromNative(out.Elem(), cn.node, native); err != nil {
		class := ClassCorrupt
		if errors.Is(err, ErrSchemaMismatch) {
			class = ClassSchemaMismatch
		}
		return nil, &DecodeError{Class: class, SchemaID: id, Record: w.name, Detail: err.Error()}
	}
	return out.Interface().(Record), nil
}

// decodeBinary decodes a body written with the canonical schema through the
// type's hand-written codec.
func decodeBinary(cn *canonical, id int, body []byte) (Record, error) {
	rec := reflect.New(cn.goType).Interface().(BinaryRecord)
	if err := rec.UnmarshalAvro(body); err != nil {
		de := &DecodeError{Class: ClassCorrupt, SchemaID: id, Record: cn.name, Detail: err.Error()}
		var inner *DecodeError
		if errors.As(err, &inner) {
			de.Class, de.Detail = inner.Class, inner.Detail
		}
		return nil, de
	}
	return rec, nil
}

func (c *Codec) writer(ctx context.Context, id int) (*writer, error) {
	c.mu.RLock()
	w, ok := c.writers[id]
	c.mu.RUnlock()
	if ok {
		return w, nil
	}
	text, err := c.reg.SchemaByID(ctx, id)
	if err != nil {
		if errors.Is(err, ErrUnknownSchema) {
			return nil, &DecodeError{Class: ClassUnknownSchema, SchemaID: id, Detail: err.Error()}
		}
		return nil, err
	}
	name, err := recordName(text)
	if err != nil {
		return nil, &DecodeError{Class: ClassUnknownSchema, SchemaID: id, Detail: err.Error()}
	}
	gc, err := goavro.NewCodec(text)
	if err != nil {
		return nil, &DecodeError{Class: ClassUnknownSchema, SchemaID: id, Record: name, Detail: err.Error()}
	}
	w = &writer{name: name, codec: gc}
	if cn, ok := c.byName[name]; ok {
		fp, err := Fingerprint(text)
		w.canonical = err == nil && fp == cn.fingerprint
	}
	c.mu.Lock()
	c.writers[id] = w
	c.mu.Unlock()
	return w, nil
}
