package avro

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Registry resolves schema ids: the writer schema behind an id read from a
// record, and the id to write a schema under.
type Registry interface {
	// SchemaByID returns the schema text for id. It returns an error wrapping
	// ErrUnknownSchema when the registry does not know the id; any other error
	// is an infrastructure failure worth retrying.
	SchemaByID(ctx context.Context, id int) (string, error)
	// IDFor returns the id to write schema under subject, registering it when
	// the registry allows that.
	IDFor(ctx context.Context, subject, schema string) (int, error)
}

// Builtin is a registry held in memory, filled from schemas/manifest.json or,
// in tests, from any set of schemas.
type Builtin struct {
	byID   map[int]string
	byName map[string]int // newest id per record full name
}

// NewBuiltin builds a registry from id → schema text. For each record name
// the highest id is the one written with.
func NewBuiltin(schemas map[int]string) (*Builtin, error) {
	b := &Builtin{byID: map[int]string{}, byName: map[string]int{}}
	for id, text := range schemas {
		name, err := recordName(text)
		if err != nil {
			return nil, fmt.Errorf("schema id %d: %w", id, err)
		}
		b.byID[id] = text
		if id > b.byName[name] {
			b.byName[name] = id
		}
	}
	return b, nil
}

// SchemaByID implements Registry.
func (b *Builtin) SchemaByID(_ context.Context, id int) (string, error) {
	s, ok := b.byID[id]
	if !ok {
		return "", fmt.Errorf("%w: %d", ErrUnknownSchema, id)
	}
	return s, nil
}

// IDFor implements Registry: the subject is not used, the record name inside
// the schema picks the id.
func (b *Builtin) IDFor(_ context.Context, _ string, schema string) (int, error) {
	name, err := recordName(schema)
	if err != nil {
		return 0, err
	}
	id, ok := b.byName[name]
	if !ok {
		return 0, fmt.Errorf("%w: no built-in id for %s", ErrUnknownSchema, name)
	}
	return id, nil
}

// SchemaRegistry is a Confluent-compatible schema registry reached through
// franz-go's sr client. Answers are cached for the life of the process: a
// schema id never changes meaning.
type SchemaRegistry struct {
	cl *sr.Client

	mu       sync.RWMutex
	byID     map[int]string
	bySubjSc map[[2]string]int
}

// registryTimeout bounds one request to the registry, retries included.
const registryTimeout = 10 * time.Second

// NewSchemaRegistry connects to the registry at rawURL (no request is made
// yet). rawURL is the Confluent-compatible API's base, e.g.
// http://registry:8081 or Apicurio's http://registry:8080/apis/ccompat/v7;
// user:password in it is sent as HTTP basic authentication and never logged.
func NewSchemaRegistry(rawURL string, opts ...sr.ClientOpt) (*SchemaRegistry, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("schema registry client: %q is not an http(s) URL", Redact(rawURL))
	}
	base := []sr.ClientOpt{sr.HTTPClient(&http.Client{Timeout: registryTimeout})}
	if u.User != nil {
		pass, _ := u.User.Password()
		base = append(base, sr.BasicAuth(u.User.Username(), pass))
		u.User = nil
	}
	base = append(base, sr.URLs(u.String()))
	cl, err := sr.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	return &SchemaRegistry{cl: cl, byID: map[int]string{}, bySubjSc: map[[2]string]int{}}, nil
}

// SchemaByID implements Registry.
func (r *SchemaRegistry) SchemaByID(ctx context.Context, id int) (string, error) {
	r.mu.RLock()
	s, ok := r.byID[id]
	r.mu.RUnlock()
	if ok {
		return s, nil
	}
	sc, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return "", fmt.Errorf("%w: %d", ErrUnknownSchema, id)
		}
		return "", fmt.Errorf("schema registry: get id %d: %w", id, err)
	}
	if sc.Type != sr.TypeAvro {
		return "", fmt.Errorf("%w: id %d is a %s schema, not Avro", ErrUnknownSchema, id, sc.Type)
	}
	r.mu.Lock()
	r.byID[id] = sc.Schema
	r.mu.Unlock()
	return sc.Schema, nil
}

// IDFor implements Registry by registering the schema under subject; a
// registry answers with the existing id when the schema is already there.
func (r *SchemaRegistry) IDFor(ctx context.Context, subject, schema string) (int, error) {
	key := [2]string{subject, schema}
	r.mu.RLock()
	id, ok := r.bySubjSc[key]
	r.mu.RUnlock()
	if ok {
		return id, nil
	}
	ss, err := r.cl.CreateSchema(ctx, subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("schema registry: register %s: %w", subject, err)
	}
	r.mu.Lock()
	r.bySubjSc[key] = ss.ID
	r.byID[ss.ID] = schema
	r.mu.Unlock()
	return ss.ID, nil
}

// Redact is rawURL with any password in it replaced, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func recordName(schema string) (string, error) {
	var doc struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if err := json.Unmarshal([]byte(schema), &doc); err != nil {
		return "", fmt.Errorf("parse schema: %w", err)
	}
	if doc.Name == "" {
		return "", errors.New("schema has no record name")
	}
	if doc.Namespace == "" {
		return doc.Name, nil
	}
	return doc.Namespace + "." + doc.Name, nil
}
