package config

import (
	"io"
	"strings"
	"testing"
)

// A schema registry URL that fails validation is named in the error
// without the password it may carry.
func TestSchemaRegistryURLErrorHidesThePassword(t *testing.T) {
	for _, u := range []string{"htps://user:s3cret-pw@registry:8081", "ftp://user:s3cret-pw@registry", "http://user:s3cret-pw@", "://user:s3cret-pw@x"} {
		_, err := NewLoader("serve", io.Discard).Load([]string{"-schema-registry-url", u}, env(nil))
		if err == nil || !strings.Contains(err.Error(), "schema registry url") {
			t.Fatalf("%s: got %v, want a schema registry url error", u, err)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
