// Package schemas embeds Stockflow's Avro event contracts and the manifest that
// gives each record its built-in schema id.
//
// The .avsc files are the source of truth for every producer and consumer;
// planning tools may read them directly. Ids in manifest.json are fixed: an id
// is never reused for a different schema. A new version of a record gets a new
// id and a new manifest entry, and the newest entry for a name is the one
// Stockflow writes with.
package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed *.avsc manifest.json
var files embed.FS

// Entry is one schema in the manifest.
type Entry struct {
	Name   string // record full name, e.g. stockflow.v1.InventoryReceived
	ID     int    // built-in schema id, the 4 bytes after the magic byte
	Schema string // the schema's JSON text
}

type manifest struct {
	Schemas []struct {
		Name string `json:"name"`
		ID   int    `json:"id"`
		File string `json:"file"`
	} `json:"schemas"`
}

// Manifest returns every schema of the manifest, in manifest order.
func Manifest() ([]Entry, error) {
	raw, err := files.ReadFile("manifest.json")
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	out := make([]Entry, 0, len(m.Schemas))
	for _, s := range m.Schemas {
		text, err := files.ReadFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", s.File, err)
		}
		out = append(out, Entry{Name: s.Name, ID: s.ID, Schema: string(text)})
	}
	return out, nil
}
